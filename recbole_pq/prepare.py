"""Turn the real data sets in ``../shared/datasets/`` into RecBole atomic files.

The shared files hold one ``user item`` pair per line, each user's lines in time
order and no timestamps, so the line number is written as the timestamp (RecBole's
``order: TO`` then reproduces the original sequence order).

    python dataset/prepare.py ml-1m [--source FILE] [--out DIR] [--max-users N]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recbole_pq.data import DATASET_ROOT, SHARED_DATASETS

INTER_HEADER = "user_id:token\titem_id:token\ttimestamp:float\n"


@dataclass(frozen=True)
class Source:
    relative_path: str  # under ../shared/datasets/
    description: str

    @property
    def source_hint(self) -> str:
        return f"{SHARED_DATASETS / self.relative_path}, {self.description}"


PREPARABLE = {
    "ml-1m": Source("ml-1m/ml-1m.txt", "MovieLens-1M sequences (see ../shared/datasets/README.md)"),
    "video-games": Source("amazon-video-games/Video.txt", "Amazon Video Games (SASRec preprocessing)"),
    "beauty": Source("amazon-beauty/beauty.txt", "Amazon Beauty (BERT4Rec preprocessing)"),
}


def read_user_item_lines(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(users, items) as int64 arrays, in file order.  Fails naming the line on bad input."""
    if not path.is_file():
        raise FileNotFoundError(
            f"Source file {path} does not exist. Put the 'user item' file there "
            f"(see ../shared/datasets/README.md for the sources), or pass --source."
        )
    try:
        data = np.loadtxt(path, dtype=np.int64, ndmin=2)
    except ValueError as err:
        raise ValueError(f"{path}: expected two integer columns 'user item' per line ({err})") from err
    if data.shape[1] != 2:
        raise ValueError(f"{path}: expected two integer columns 'user item', found {data.shape[1]}")
    return data[:, 0], data[:, 1]


def write_atomic_inter(users, items, out_file: Path) -> None:
    """RecBole ``.inter`` file; the timestamp is the interaction's position in the source."""
    out_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_file.with_suffix(".inter.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(INTER_HEADER)
        for position, (user, item) in enumerate(zip(users.tolist(), items.tolist())):
            f.write(f"{user}\t{item}\t{position}\n")
    tmp.replace(out_file)  # never leave a half-written data set behind


def prepare(name: str, source: Path | None = None, out_root: Path = DATASET_ROOT,
            max_users: int | None = None) -> Path:
    """Write ``out_root/<name>/<name>.inter`` and return its path."""
    if name not in PREPARABLE:
        raise ValueError(f"Unknown data set '{name}'; preparable: {', '.join(PREPARABLE)}")
    source = Path(source) if source else SHARED_DATASETS / PREPARABLE[name].relative_path
    users, items = read_user_item_lines(source)
    if max_users is not None:
        if max_users < 1:
            raise ValueError(f"--max-users must be >= 1, got {max_users}")
        keep_users = np.unique(users)[:max_users]  # the users with the smallest ids
        mask = np.isin(users, keep_users)
        users, items = users[mask], items[mask]
    out_file = Path(out_root) / name / f"{name}.inter"
    write_atomic_inter(users, items, out_file)
    return out_file


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="+", choices=sorted(PREPARABLE), metavar="NAME",
                        help=f"data sets to prepare: {', '.join(sorted(PREPARABLE))}")
    parser.add_argument("--source", type=Path, help="source 'user item' file (only with one NAME)")
    parser.add_argument("--out", type=Path, default=DATASET_ROOT, help="root folder of the atomic files")
    parser.add_argument("--max-users", type=int, help="keep only the first N users (small test sets)")
    args = parser.parse_args(argv)
    if args.source and len(args.names) > 1:
        parser.error("--source takes one data set name")
    for name in args.names:
        try:
            out = prepare(name, args.source, args.out, args.max_users)
        except (FileNotFoundError, ValueError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
