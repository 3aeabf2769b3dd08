"""``esrgan zoo list`` / ``esrgan zoo download NAME [--no-verify]``: the model zoo (``esrgan.zoo``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from esrgan.zoo import ZOO, ZooError, cache_dir, download, sha256_file


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="esrgan zoo", description="List or download pretrained models.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="list the models, their scale and whether they are cached")
    dl = sub.add_parser("download", help="download models into the cache (verified by SHA-256)")
    dl.add_argument("names", nargs="+", metavar="NAME", help=f"one of: {', '.join(ZOO)}")
    dl.add_argument("--no-verify", action="store_true", help="accept a model without a published SHA-256")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))

    if args.cmd == "list":
        folder = cache_dir()
        width = max(map(len, ZOO))
        print(f"cache: {folder}")
        for e in ZOO.values():
            cached = "cached" if (folder / e.filename).is_file() else "-"
            print(f"  {e.name:<{width}}  x{e.scale}  {e.arch:<9} {cached:<7} {e.description}")
        return 0
    status = 0
    for name in args.names:
        try:
            path = download(name, no_verify=args.no_verify)
        except (ZooError, OSError) as exc:
            print(f"esrgan zoo: {exc}", file=sys.stderr)
            status = 1
            continue
        print(f"{name}: {path}  sha256 {sha256_file(path)}")
    return status


if __name__ == "__main__":
    sys.exit(main())
