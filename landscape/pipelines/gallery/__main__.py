"""Rebuild the gallery: ``python -m landscape.pipelines.gallery [--depths 8 20 32 56] [--res 25] ...``.

Trains and slices every (depth, skip) pair and writes the surface files into the gallery folder
(or --out), printing one JSON line per pair and the Markdown table at the end. Bad flag or
value: one line on stderr, exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from landscape.pipelines import gallery


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m landscape.pipelines.gallery", description=__doc__)
    p.add_argument("--out", type=Path, default=gallery.HERE, help="folder for the .npz files")
    p.add_argument("--depths", type=int, nargs="+", default=list(gallery.DEPTHS),
                   help="ResNet depths N = 6k + 2 in [8, 56]")  # fmt: skip
    p.add_argument(
        "--epochs", type=int, default=gallery.EPOCHS, help="training epochs, in [1, 500]"
    )
    p.add_argument("--res", type=int, default=gallery.Slice.res, help="points per axis")
    p.add_argument("--span", type=float, default=gallery.Slice.span, help="plane [-span, span]^2")
    p.add_argument("--samples", type=int, default=gallery.Slice.samples,
                   help="training images per loss value")  # fmt: skip
    p.add_argument(
        "--dir-seed", type=int, default=gallery.Slice.dir_seed, help="seed of the random directions"
    )
    p.add_argument("--convexity", type=int, default=gallery.Slice.convexity,
                   help="points per axis of the convexity map (0: none)")  # fmt: skip
    p.add_argument("--convexity-layers", type=int, default=gallery.Slice.convexity_layers,
                   help="map convexity only for nets of at least this many layers")  # fmt: skip
    p.add_argument("--dataset", default="digits", help="image set: digits or shapes")
    p.add_argument("--n-samples", type=int, default=0, help="images (0: the default 1,797)")
    p.add_argument("--optimizer", default=gallery.OPTIMIZER, help="sgd, momentum, adam or adamw")
    p.add_argument("--lr", type=float, default=gallery.LR, help="peak learning rate")
    p.add_argument("--weight-decay", type=float, default=gallery.WEIGHT_DECAY, help="weight decay")
    p.add_argument(
        "--schedule", default="cosine", help="lr schedule after warm-up: constant or cosine"
    )
    p.add_argument("--warmup-epochs", type=int, default=None,
                   help=f"epochs of linear lr warm-up (default: {gallery.WARMUP_EPOCHS}, or all epochs if fewer)")  # fmt: skip
    p.add_argument("--skips", choices=["both", "yes", "no"], default="both",
                   help="which nets to build: with skips, without, or both")  # fmt: skip
    p.add_argument("--runs-dir", type=Path, default=None,
                   help="keep trained runs here and reuse them on the next build")  # fmt: skip
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        sl = gallery.Slice(
            args.span, args.res, args.samples, args.dir_seed, args.convexity, args.convexity_layers
        )
        kw = dict(dataset=args.dataset, optimizer=args.optimizer, lr=args.lr,
                  weight_decay=args.weight_decay, schedule=args.schedule)  # fmt: skip
        if args.warmup_epochs is not None:
            kw["warmup_epochs"] = args.warmup_epochs
        if args.n_samples:
            kw["n_samples"] = args.n_samples
        for n in args.depths:
            gallery.config_for(n, True, args.epochs, **kw)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    skips = {"both": (True, False), "yes": (True,), "no": (False,)}[args.skips]
    rows = gallery.build(args.out, args.depths, sl, args.epochs, args.runs_dir, skips=skips, **kw)
    print(gallery.table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
