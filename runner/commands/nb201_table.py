"""`runner nb201-table --source FILE [--out PATH]`: convert the official NAS-Bench-201 file
once into the compact table that spaces.nb201.table.Table reads."""
import argparse
import sys

from spaces.nb201.table import OFFICIAL_FILE, default_table_path

PROG = "runner nb201-table"
EPILOG = f"""The source is the official benchmark file ({OFFICIAL_FILE} or
NAS-Bench-201-v1_0-e61699.pth; needs `pip install nas-bench-201`), or NATS-Bench's topology
benchmark (its NATS-tss-v1_0-3ffb9-simple folder or .pickle.pbz2 file; needs
`pip install nats_bench`). Only the 200-epoch results are kept, for cifar10, cifar100 and
ImageNet16-120 (see spaces/nb201/table.py for what each number is)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of argparse's usage block
        print(f"{PROG}: error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def parser():
    p = _Parser(prog=PROG, description=__doc__, epilog=EPILOG,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", required=True, metavar="FILE",
                   help="the official benchmark file (or NATS-Bench folder)")
    p.add_argument("--out", default=default_table_path(), metavar="PATH",
                   help=f"the table to write (default: {default_table_path()})")
    p.add_argument("--traceback", action="store_true", help="show the full traceback on errors")
    return p


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = parser().parse_args(argv)
    except SystemExit as e:  # --help (0) or a usage error (2): a code, not an exit
        return 0 if e.code is None else int(e.code)
    from runner.config import one_line
    from spaces.nb201.table import convert

    try:
        n = convert(args.source, args.out, log=lambda line: print(line, file=sys.stderr))
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; nothing written", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - one line per failure, full trace on request
        if args.traceback:
            raise
        print(f"{PROG}: error: {one_line(e)}", file=sys.stderr)
        return 2
    print(f"{PROG}: {n} cells written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
