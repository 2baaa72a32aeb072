"""``python -m landscape export PREFIX.npz --vtp|--obj|--stl``: a plane surface as a 3D mesh.

The meshes are written by ``landscape.storage.export``; this is its command line.
"""

from __future__ import annotations

import argparse

from landscape.storage.export import FORMATS, export


def add_parser(sub) -> argparse.ArgumentParser:
    """The ``export`` subcommand of ``python -m landscape``."""
    p = sub.add_parser(
        "export",
        help="write a surface as a 3D mesh (ParaView .vtp, .obj, .stl) or as the original code's .h5",
        description="Write a plane surface file (.npz) as a 3D mesh: ParaView .vtp, "
        "Wavefront .obj (Blender), binary .stl (3D printing); or any surface as HDF5 in the original "
        "loss-landscape code's layout (.h5).",
    )
    p.add_argument("surface", metavar="PREFIX.npz", help="a plane surface written by 'plane'")
    for fmt, text in (
        ("vtp", "ParaView PolyData (VTK XML)"),
        ("obj", "Wavefront OBJ (Blender)"),
        ("stl", "binary STL (3D printing)"),
        ("h5", "HDF5 in the original loss-landscape code's layout (its plot_2D.py reads it)"),
    ):
        p.add_argument(f"--{fmt}", action="store_true", help=f"write OUT.{fmt}: {text}")
    p.add_argument(
        "--field",
        choices=["loss", "accuracy"],
        default="loss",
        help="height of the mesh (default: loss)",
    )
    p.add_argument("--log", action="store_true", help="height ln(z + 0.1), as the original h52vtp")
    p.add_argument("--zmax", type=float, help="clip heights above this value (before --log)")
    p.add_argument(
        "--out", metavar="OUT", help="write OUT.vtp/.obj/.stl/.h5 (default: the input without .npz)"
    )
    return p


def run(args: argparse.Namespace) -> int:
    formats = [f for f in FORMATS if getattr(args, f)]
    for path in export(args.surface, formats, args.field, args.log, args.zmax, args.out):
        print(f"wrote {path}")
    return 0
