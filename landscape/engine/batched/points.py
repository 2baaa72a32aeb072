"""Parameters of every point of a chunk: ``center + coords @ D`` in one addmm."""

from __future__ import annotations

import torch
import torch.fx
from torch import Tensor, nn

# ----------------------------------------------------------------------------- parameters


class _Points:
    """Parameters of every point of the current chunk.

    All moved parameters are one flat vector: the chunk's values are
    ``center + coords @ D`` in a single addmm, (K, P), and each parameter is a view of its
    columns, (K, *shape). A parameter that no direction moves is the centre tensor itself,
    shared by all points.
    """

    def __init__(self, model: nn.Module, center, directions, dtype) -> None:
        self.center: dict[str, Tensor] = {}
        self.used: dict[str, list[int]] = {}  # moved parameter -> the directions that move it
        self.slices: dict[str, slice] = {}  # moved parameter -> its columns of the flat vector
        rows = []
        params = dict(model.named_parameters())
        for name in center:  # buffers: moved BatchNorm statistics (checked by the Session)
            if name not in params:
                params[name] = model.get_buffer(name)
        for name, p in params.items():
            if name not in center:
                raise ValueError(f"center has no entry {name!r}: it must hold every parameter")
            c = torch.as_tensor(center[name]).detach().to(dtype)
            if c.shape != p.shape:
                raise ValueError(
                    f"center[{name!r}] has shape {tuple(c.shape)}: must be {tuple(p.shape)}"
                )
            self.center[name] = c
            d, used = _direction_rows(name, p, directions, dtype)
            if used:
                start = sum(r.shape[1] for r in rows)
                self.slices[name], self.used[name] = slice(start, start + c.numel()), used
                rows.append(d)
        moved = list(self.slices)
        self.flat_center = torch.cat(
            [self.center[n].reshape(-1) for n in moved] or [torch.zeros(0)]
        )
        self.flat_dirs = (
            torch.cat(rows, 1) if rows else torch.zeros(len(directions), 0, dtype=dtype)
        )
        self.coords = torch.zeros(1, len(directions), dtype=dtype)  # (K, m) of this chunk
        self.flat = self.flat_center[None]  # (K, P) of this chunk

    def start_chunk(self, coords: Tensor) -> None:
        self.coords = coords
        self.flat = torch.addmm(self.flat_center[None], coords, self.flat_dirs)  # (K, P)

    def moved(self, name: str) -> bool:
        return name in self.slices

    def get(self, name: str) -> Tensor:
        """(K, *shape) when some direction moves ``name``, else the shared centre tensor."""
        if name not in self.slices:
            return self.center[name]
        return self.flat[:, self.slices[name]].view(-1, *self.center[name].shape)

    def term(self, name: str, j: int | None) -> Tensor:
        """The centre (j=None) or direction j's entries of one parameter."""
        c = self.center[name]
        if j is None:
            return c
        if name not in self.slices:
            return torch.zeros_like(c)
        return self.flat_dirs[j, self.slices[name]].view(c.shape)


def _direction_rows(name, p, directions, dtype) -> tuple[Tensor, list[int]]:
    """The stacked directions (m, numel) of one parameter and the indices of non-zero ones."""
    rows, used = [], []
    for j, d in enumerate(directions):
        t = d.get(name)
        if t is None:
            rows.append(torch.zeros(p.numel(), dtype=dtype))
            continue
        t = torch.as_tensor(t).detach().to(dtype)
        if t.shape != p.shape:
            raise ValueError(
                f"directions[{j}][{name!r}] has shape {tuple(t.shape)}: must be {tuple(p.shape)}"
            )
        rows.append(t.reshape(-1))
        if bool(torch.any(t != 0)):
            used.append(j)
    return torch.stack(rows) if rows else torch.zeros(0, p.numel(), dtype=dtype), used
