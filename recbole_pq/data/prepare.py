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

import numpy as np

from recbole_pq.data.paths import DATASET_ROOT, SHARED_DATASETS

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



RAW_ROOT = DATASET_ROOT / "raw"


@dataclass(frozen=True)
class RawSource:
    """A public raw file we convert but do not ship: where it is expected and where it comes from."""

    file_name: str
    origin: str

    @property
    def source_hint(self) -> str:
        return f"{RAW_ROOT / self.file_name}, {self.origin}"


RAW_SOURCES = {
    "ml-1m-raw": RawSource("ratings.dat", "MovieLens-1M ratings.dat (UserID::MovieID::Rating::Timestamp) from "
                                          "https://grouplens.org/datasets/movielens/1m/"),
    "gowalla": RawSource("loc-gowalla_totalCheckins.txt.gz", "SNAP Gowalla check-ins (user, time, latitude, "
                                                             "longitude, location) from "
                                                             "https://snap.stanford.edu/data/loc-gowalla.html"),
    "booking": RawSource("train_set.csv", "Booking.com WSDM WebTour 2021 challenge train_set.csv "
                                          "(utrip_id sequences of city_id by checkin)"),
}


PREPARABLE.update(RAW_SOURCES)


def read_raw(name: str, path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(users, items, unix timestamps) of a raw file, sorted by user then time (stable)."""
    import pandas as pd

    if not path.is_file():
        raise FileNotFoundError(
            f"Raw file {path} for '{name}' does not exist. It is not shipped (no download at run time): "
            f"get {RAW_SOURCES[name].origin}, put it at {RAW_ROOT / RAW_SOURCES[name].file_name} or pass --source.")
    try:
        if name == "ml-1m-raw":
            frame = pd.read_csv(path, sep="::", engine="python", header=None,
                                names=["user", "item", "rating", "time"])
            times = frame["time"].to_numpy(np.int64)
        elif name == "gowalla":
            frame = pd.read_csv(path, sep="\t", header=None, names=["user", "time", "lat", "lon", "item"])
            times = pd.to_datetime(frame["time"], utc=True).astype("int64").to_numpy() // 10**9
        else:  # booking: one sequence per trip
            frame = pd.read_csv(path, usecols=["utrip_id", "checkin", "city_id"]).rename(
                columns={"utrip_id": "user", "city_id": "item"})
            times = pd.to_datetime(frame["checkin"]).astype("int64").to_numpy() // 10**9
    except (ValueError, KeyError, pd.errors.ParserError) as err:
        raise ValueError(f"{path}: not a {RAW_SOURCES[name].origin} file ({type(err).__name__}: {err})") from err
    users, items = frame["user"].astype(str).to_numpy(), frame["item"].astype(str).to_numpy()
    order = np.lexsort((times, users))  # by user, then time; ties keep file order
    return users[order], items[order], times[order]


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
    timestamps = None
    if name in RAW_SOURCES:
        users, items, timestamps = read_raw(name, Path(source) if source else RAW_ROOT / RAW_SOURCES[name].file_name)
    else:
        source = Path(source) if source else SHARED_DATASETS / PREPARABLE[name].relative_path
        users, items = read_user_item_lines(source)
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
