"""Turn real data sets into RecBole atomic files (``dataset/<name>/<name>.inter``).

The shared files in ``../shared/datasets/`` hold one ``user item`` pair per line, each
user's lines in time order and no timestamps, so the line number is written as the
timestamp (RecBole's ``order: TO`` then reproduces the original sequence order).

Raw public files that are not shipped here (no download at run time) have converters
that keep their real timestamps: MovieLens ``ratings.dat`` (``ml-1m-raw``), SNAP's Gowalla
check-ins (``gowalla``) and Booking.com's WSDM WebTour ``train_set.csv`` (``booking``, one
sequence per trip).  Put the file under ``dataset/raw/`` (names below) or pass --source.

    python dataset/prepare.py ml-1m [--source FILE] [--out DIR] [--max-users N]
    python dataset/prepare.py gowalla --source loc-gowalla_totalCheckins.txt.gz
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from recbole_pq.data.paths import DATASET_ROOT, SHARED_DATASETS

INTER_HEADER = "user_id:token\titem_id:token\ttimestamp:float\n"


@dataclass(frozen=True)
class Source:
    """A data set we prepare: the file read by default, where that file comes from, and its reader
    (path -> users, items, and timestamps or None when the line order is the time order)."""

    default_path: Path
    origin: str
    reader: Callable[[Path, str], tuple[np.ndarray, np.ndarray, np.ndarray | None]]

    @property
    def source_hint(self) -> str:
        return f"{self.default_path}, {self.origin}"

    def read(self, path: Path | None = None):
        path = Path(path) if path else self.default_path
        if not path.is_file():
            raise FileNotFoundError(
                f"Source file {path} does not exist. It is not shipped (no download at run time): get {self.origin}, "
                f"put it at {self.default_path} or pass --source.")
        return self.reader(path, self.origin)


def read_user_item_lines(path: Path, origin: str = "a 'user item' file"):
    """(users, items, None): int64 arrays in file order, whose line order is the time order (a
    ``Source`` reader; ``origin`` is unused here).  Fails naming the line on bad input."""
    try:
        data = np.loadtxt(path, dtype=np.int64, ndmin=2)
    except ValueError as err:
        raise ValueError(f"{path}: expected two integer columns 'user item' per line ({err})") from err
    if data.shape[1] != 2:
        raise ValueError(f"{path}: expected two integer columns 'user item', found {data.shape[1]}")
    return data[:, 0], data[:, 1], None


def _raw_reader(parse: Callable):
    """A reader of a raw public file: ``parse(path) -> (frame with user and item, unix times)``,
    sorted by user, then time (stable: ties keep file order); a file of another format names it."""

    def read(path: Path, origin: str):
        import pandas as pd

        try:
            frame, times = parse(path)
        except (ValueError, KeyError, pd.errors.ParserError) as err:
            raise ValueError(f"{path}: not a {origin} file ({type(err).__name__}: {err})") from err
        users, items = frame["user"].astype(str).to_numpy(), frame["item"].astype(str).to_numpy()
        order = np.lexsort((times, users))
        return users[order], items[order], times[order]

    return read


def _movielens_ratings(path):
    import pandas as pd

    frame = pd.read_csv(path, sep="::", engine="python", header=None, names=["user", "item", "rating", "time"])
    return frame, frame["time"].to_numpy(np.int64)


def _gowalla_checkins(path):
    import pandas as pd

    frame = pd.read_csv(path, sep="\t", header=None, names=["user", "time", "lat", "lon", "item"])
    return frame, pd.to_datetime(frame["time"], utc=True).astype("int64").to_numpy() // 10**9


def _booking_trips(path):  # one sequence per trip
    import pandas as pd

    frame = pd.read_csv(path, usecols=["utrip_id", "checkin", "city_id"]).rename(
        columns={"utrip_id": "user", "city_id": "item"})
    return frame, pd.to_datetime(frame["checkin"]).astype("int64").to_numpy() // 10**9


RAW_ROOT = DATASET_ROOT / "raw"
PREPARABLE = {
    "ml-1m": Source(SHARED_DATASETS / "ml-1m/ml-1m.txt",
                    "MovieLens-1M sequences (see ../shared/datasets/README.md)", read_user_item_lines),
    "video-games": Source(SHARED_DATASETS / "amazon-video-games/Video.txt",
                          "Amazon Video Games (SASRec preprocessing)", read_user_item_lines),
    "beauty": Source(SHARED_DATASETS / "amazon-beauty/beauty.txt",
                     "Amazon Beauty (BERT4Rec preprocessing)", read_user_item_lines),
    # raw public files, converted with their real timestamps but not shipped
    "ml-1m-raw": Source(RAW_ROOT / "ratings.dat", "MovieLens-1M ratings.dat (UserID::MovieID::Rating::Timestamp) "
                        "from https://grouplens.org/datasets/movielens/1m/", _raw_reader(_movielens_ratings)),
    "gowalla": Source(RAW_ROOT / "loc-gowalla_totalCheckins.txt.gz", "SNAP Gowalla check-ins (user, time, latitude, "
                      "longitude, location) from https://snap.stanford.edu/data/loc-gowalla.html",
                      _raw_reader(_gowalla_checkins)),
    "booking": Source(RAW_ROOT / "train_set.csv", "Booking.com WSDM WebTour 2021 challenge train_set.csv "
                      "(utrip_id sequences of city_id by checkin)", _raw_reader(_booking_trips)),
}


def write_atomic_inter(users, items, out_file: Path, timestamps=None) -> None:
    """RecBole ``.inter`` file; the timestamp is the given one, else the interaction's
    position in the source."""
    out_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_file.with_suffix(".inter.tmp")
    times = timestamps.tolist() if timestamps is not None else range(len(users))
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(INTER_HEADER)
        for user, item, time in zip(users.tolist(), items.tolist(), times):
            f.write(f"{user}\t{item}\t{time}\n")
    tmp.replace(out_file)  # never leave a half-written data set behind


def prepare(name: str, source: Path | None = None, out_root: Path = DATASET_ROOT,
            max_users: int | None = None) -> Path:
    """Write ``out_root/<name>/<name>.inter`` and return its path."""
    if name not in PREPARABLE:
        raise ValueError(f"Unknown data set '{name}'; preparable: {', '.join(PREPARABLE)}")
    users, items, timestamps = PREPARABLE[name].read(source)
    if max_users is not None:
        if max_users < 1:
            raise ValueError(f"--max-users must be >= 1, got {max_users}")
        keep_users = np.unique(users)[:max_users]  # the users with the smallest ids
        mask = np.isin(users, keep_users)
        users, items = users[mask], items[mask]
        timestamps = timestamps[mask] if timestamps is not None else None
    out_file = Path(out_root) / name / f"{name}.inter"
    write_atomic_inter(users, items, out_file, timestamps)
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
