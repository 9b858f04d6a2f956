"""Trustworthy SQLite backups: online copy, verification, compression, encryption, S3, retention.

Shared by the modules ``tengen.ops.sqlite_backup`` / ``tengen.ops.sqlite_restore`` and by the
``tengen-backup`` command that the VM's systemd timer runs (this same file is installed on the VM as
``/usr/local/lib/tengen-backup/tengen_sqlite_backup.py``). Standard library only; boto3 (S3) and
cryptography (client-side encryption) are imported, and the zstd command run, when those features are used.

A backup is two files: the data file ``NAME.db[.zst|.gz|.xz][.enc]`` and its manifest ``NAME.json``.
zstd (the ``zstd`` command, Debian package zstd, on as many threads as the host has CPUs) is the
default since format 2; gzip, lzma and uncompressed backups of either format stay readable.
Both are written atomically (temporary file in the same directory, fsync, rename, fsync of the
directory), the manifest last: a backup without a manifest is incomplete and never restored.
"""

from __future__ import annotations

import base64
import calendar
import datetime as dt
import functools
import gzip
import hashlib
import json
import logging
import lzma
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Any

# The manifest's format: 1 wrote gzip, lzma or none; 2 adds zstd (the default) and names the compression
# offsite too. Restore, verify, drill and retention read every format listed here.
FORMAT_VERSION = 2
READABLE_FORMATS = (1, 2)
CHUNK = 1024 * 1024
ENC_MAGIC = b"TGNBAK1\0"  # file header of an encrypted backup: magic, 12-byte nonce, ciphertext, 16-byte tag
NONCE_LEN = 12
TAG_LEN = 16
COMPRESSIONS = {"zstd": ".zst", "gzip": ".gz", "lzma": ".xz", "none": ""}
# zstd's fastest levels compress faster than a disk writes; 1 keeps up with a copy of the database.
ZSTD_LEVEL = 1
SSE_CHOICES = ("AES256", "aws:kms")
TMP_PREFIX = ".tmp-"
# Where a schema records its version: the backend's own (schema_version) first.
MIGRATION_TABLES = ("schema_version", "schema_migrations", "migrations", "alembic_version")
NAME_RE = re.compile(r"^[A-Za-z0-9._-]+$")
LOG = logging.getLogger("tengen_backup")
SEALED_SUFFIX = ".meta.enc"  # the encrypted full manifest beside an offsite backup
# What the offsite manifest of an encrypted backup shows in clear: what retention and the choice of
# a backup need (name, time, format, sizes, the encrypted file's checksum, verified, key id).
PUBLIC_MANIFEST_KEYS = (
    "format",
    "name",
    "created",
    "compression",
    "file",
    "file_size",
    "sha256",
    "db_size",
    "integrity_check",
    "encryption",
)


class BackupError(Exception):
    """A backup or restore step failed; the message says which and why."""


class VerificationError(BackupError):
    """A backup failed verification (checksum, decryption, decompression or integrity)."""


# --------------------------------------------------------------------------- files


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_file(path: str, mode: int = 0o600) -> Iterator[IO[bytes]]:
    """Write ``path`` through a temporary file in the same directory; rename it into place only
    when the block succeeds, so a crash or a full disk never leaves a partial file under the name."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, dir=directory)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        fsync_dir(directory)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_bytes(path: str, data: bytes, mode: int = 0o600) -> None:
    with atomic_file(path, mode) as handle:
        handle.write(data)


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)


# --------------------------------------------------------------------------- encryption


def load_key(key: str | bytes | None) -> bytes | None:
    """A 256-bit key given as base64 (``openssl rand -base64 32``) or 64 hex digits."""
    if key is None or key == "" or key == b"":
        return None
    if isinstance(key, bytes):
        key = key.decode()
    key = key.strip()
    raw: bytes | None = None
    if re.fullmatch(r"[0-9a-fA-F]{64}", key):
        raw = bytes.fromhex(key)
    else:
        try:
            raw = base64.b64decode(key, validate=True)
        except ValueError:
            raw = None
    if raw is None or len(raw) != 32:
        raise BackupError(
            "the encryption key must be 32 random bytes as base64 or hex (openssl rand -base64 32)"
        )
    return raw


KeyInput = str | bytes | list[str] | tuple[str, ...] | None


def load_keys(keys: KeyInput) -> list[bytes]:
    """A keyring, newest first: one key, or a list of keys. The first encrypts new backups; every
    one of them can decrypt, so backups made before a key rotation stay restorable."""
    if keys is None or isinstance(keys, (str, bytes)):
        one = load_key(keys)
        return [one] if one is not None else []
    ring: list[bytes] = []
    for position, item in enumerate(keys):
        try:
            raw = load_key(item)
        except BackupError as exc:
            raise BackupError(f"encryption key #{position + 1} of the keyring: {exc}") from None
        if raw is not None and raw not in ring:
            ring.append(raw)
    return ring


def pick_key(keys: KeyInput, manifest: dict[str, Any]) -> bytes | None:
    """The keyring's key that made ``manifest``'s backup (by key id), None for an unencrypted backup."""
    encryption = manifest.get("encryption")
    if not encryption:
        return None
    ring = load_keys(keys)
    wanted = encryption.get("key_id")
    if not ring:
        raise VerificationError(
            f"{manifest['name']} is encrypted (key id {wanted}): an encryption key is needed"
        )
    for raw in ring:
        if key_id(raw) == wanted:
            return raw
    raise VerificationError(
        f"{manifest['name']} was encrypted with the key of key id {wanted}, which is not in the keyring "
        f"(key ids {', '.join(key_id(r) for r in ring)}): wrong encryption key. Keep that key in "
        "sqlite_backup_encryption_keys, after the newest, for as long as its backups are kept"
    )


def key_id(key: bytes) -> str:
    """A fingerprint of the key, stored in the manifest, so that a wrong key is named as such."""
    return hashlib.sha256(b"tengen-backup-key-id" + key).hexdigest()[:16]


PLAINTEXT_OFFSITE_REFUSED = (
    "a bucket is set but no encryption key: the offsite copies would hold the database in plaintext. "
    "Set an encryption key (sqlite_backup_encryption_keys), or opt out explicitly with "
    "sqlite_backup_allow_plaintext_offsite: true (module option allow_plaintext_offsite, "
    "TENGEN_BACKUP_ALLOW_PLAINTEXT_OFFSITE=true)"
)


def check_offsite_encryption(s3: Any, encrypted: bool, allow_plaintext_offsite: bool) -> None:
    """Refuse, before anything is written, to send an unencrypted database to a bucket unless the
    operator opted out in writing: a missing vault key must never silently mean plaintext offsite."""
    if s3 is not None and not encrypted and not allow_plaintext_offsite:
        raise BackupError(PLAINTEXT_OFFSITE_REFUSED)


def _aes_gcm(key: bytes, nonce: bytes, tag: bytes | None = None) -> Any:
    try:
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    except ImportError as exc:  # pragma: no cover - depends on the host
        raise BackupError(
            "encryption needs the Python package cryptography (Debian: python3-cryptography)"
        ) from exc
    cipher = Cipher(algorithms.AES(key), modes.GCM(nonce, tag))
    return cipher.decryptor() if tag is not None else cipher.encryptor()


def seal_bytes(key: bytes, data: bytes) -> bytes:
    """Encrypt a small blob (a manifest) in the backup file's format: magic, nonce, ciphertext, tag."""
    nonce = os.urandom(NONCE_LEN)
    encryptor = _aes_gcm(key, nonce)
    body = encryptor.update(data) + encryptor.finalize()
    return ENC_MAGIC + nonce + body + encryptor.tag


def open_sealed(key: bytes, blob: bytes, origin: str) -> bytes:
    head = len(ENC_MAGIC) + NONCE_LEN
    if len(blob) < head + TAG_LEN or not blob.startswith(ENC_MAGIC):
        raise VerificationError(f"{origin}: not an encrypted file of ours")
    decryptor = _aes_gcm(key, blob[len(ENC_MAGIC) : head], blob[-TAG_LEN:])
    try:
        return decryptor.update(blob[head:-TAG_LEN]) + decryptor.finalize()
    except Exception as exc:  # cryptography's InvalidTag
        raise VerificationError(f"{origin}: decryption failed (wrong key or tampered file)") from exc


# --------------------------------------------------------------------------- database inspection


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def table_row_counts(conn: sqlite3.Connection) -> dict[str, int]:
    """Row counts of every user table: the only use the tools make of the backend's schema."""
    names = [
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )
    ]
    return {name: conn.execute(f"SELECT count(*) FROM {_quote(name)}").fetchone()[0] for name in names}


# -1 for a value that is not JSON: counted and compared like any other, never failing a backup
MOVE_COUNTS_SQL = (
    "SELECT id, CASE WHEN json_valid(moves) THEN json_array_length(moves) ELSE -1 END FROM games"
)


def game_move_counts(
    conn: sqlite3.Connection, rowids: tuple[int, int] | None = None
) -> dict[str, int] | None:
    """Each game's move count, when the database is the backend's (``games`` with its moves as a JSON
    array): what row counts cannot see, a move lost inside a game. None for another schema.
    ``rowids``: only the games whose rowid is in that closed range."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(games)")}
    if not {"id", "moves"} <= columns:
        return None
    where, args = (" WHERE rowid BETWEEN ? AND ?", rowids) if rowids else ("", ())
    return {str(gid): int(n or 0) for gid, n in conn.execute(MOVE_COUNTS_SQL + where, args)}


def game_move_counts_file(path: str, parts: int | None = None) -> dict[str, int] | None:
    """``game_move_counts`` of a database file that nothing writes, on ``parts`` threads (the CPUs),
    each with its own connection and its own range of rowids: parsing every game's JSON is the
    costliest read of a backup and of a restore."""
    conn = open_existing(path, readonly=True)
    try:
        try:
            low, high = conn.execute("SELECT min(rowid), max(rowid) FROM games").fetchone()
        except sqlite3.OperationalError:  # no games table, or one without rowids: one pass
            return game_move_counts(conn)
    finally:
        conn.close()
    parts = parts or compression_threads()
    if low is None or parts < 2:
        return _move_counts_of(path, None)
    step = (high - low) // parts + 1
    ranges = [(low + i * step, min(high, low + (i + 1) * step - 1)) for i in range(parts)]
    with ThreadPoolExecutor(max_workers=parts, thread_name_prefix="move-counts") as pool:
        found = list(pool.map(lambda r: _move_counts_of(path, r), ranges))
    if any(part is None for part in found):
        return None
    merged: dict[str, int] = {}
    for part in found:
        merged.update(part or {})
    return merged


def _move_counts_of(path: str, rowids: tuple[int, int] | None) -> dict[str, int] | None:
    conn = open_existing(path, readonly=True)
    try:
        return game_move_counts(conn, rowids)
    finally:
        conn.close()


def summarize_moves(per_game: dict[str, int] | None) -> dict[str, Any] | None:
    """What a manifest records of the moves: games, moves in all, and a digest of every game's count."""
    if per_game is None:
        return None
    digest = hashlib.sha256("".join(f"{gid}\t{n}\n" for gid, n in sorted(per_game.items())).encode())
    return {"games": len(per_game), "moves": sum(per_game.values()), "sha256": digest.hexdigest()}


def compare_game_moves(restored: dict[str, int], live: dict[str, int]) -> dict[str, Any]:
    """The drill's comparison of moves. A game's moves only grow, so the live database must hold every
    game of the restored copy with at least as many moves: fewer means moves lost (on either side)."""
    lost = {
        gid: {"restored": n, "live": live[gid]}
        for gid, n in sorted(restored.items())
        if gid in live and live[gid] < n
    }
    gone = sorted(gid for gid in restored if gid not in live)
    return {
        "restored": {"games": len(restored), "moves": sum(restored.values())},
        "live": {"games": len(live), "moves": sum(live.values())},
        "games_with_lost_moves": len(lost),
        "lost": dict(list(lost.items())[:20]),  # the first few, by id
        "games_missing_in_live": len(gone),
        "missing_in_live": gone[:20],
    }


def describe_database(conn: sqlite3.Connection, path: str | None = None) -> dict[str, Any]:
    """What a manifest records of a database; with ``path`` (a file nothing writes) the move counts
    are read on several threads."""
    info: dict[str, Any] = {
        "page_size": conn.execute("PRAGMA page_size").fetchone()[0],
        "page_count": conn.execute("PRAGMA page_count").fetchone()[0],
        "user_version": conn.execute("PRAGMA user_version").fetchone()[0],
        "migrations": None,
    }
    tables = table_row_counts(conn)
    for candidate in MIGRATION_TABLES:
        if candidate in tables:
            first_col = conn.execute(f"PRAGMA table_info({_quote(candidate)})").fetchone()[1]
            latest = conn.execute(f"SELECT max({_quote(first_col)}) FROM {_quote(candidate)}").fetchone()[0]
            info["migrations"] = {"table": candidate, "rows": tables[candidate], "latest": latest}
            break
    info["tables"] = tables
    moves = summarize_moves(game_move_counts_file(path) if path else game_move_counts(conn))
    if moves is not None:
        info["game_moves"] = moves
    return info


def describe_file(path: str) -> dict[str, Any]:
    """``describe_database`` of a database file, read-only."""
    conn = open_existing(path, readonly=True)
    try:
        return describe_database(conn, path)
    finally:
        conn.close()


def integrity_check(path: str) -> str:
    """``PRAGMA integrity_check`` on a database file; 'ok' or the problems it found."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = [row[0] for row in conn.execute("PRAGMA integrity_check")]
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        return f"not a usable database: {exc}"
    return "ok" if rows == ["ok"] else "; ".join(str(r) for r in rows[:20])


def open_existing(path: str, readonly: bool = False) -> sqlite3.Connection:
    """Open a database that must already exist (sqlite3.connect would create an empty one)."""
    if not os.path.isfile(path):
        raise BackupError(f"database {path} does not exist")
    return sqlite3.connect(f"file:{path}?mode={'ro' if readonly else 'rw'}", uri=True, timeout=30)


# --------------------------------------------------------------------------- online copy


def online_copy(
    src_path: str,
    dest_path: str,
    pages: int = 1024,
    max_restarts: int = 3,
    sleep: float = 0.0,
    describe: bool = True,
) -> dict[str, Any]:
    """Copy a live database with SQLite's backup API into ``dest_path`` (which must not exist).

    In WAL mode a reader never blocks writers, so the copy runs as one step inside one read
    transaction: a consistent snapshot that holds every transaction committed before it began.
    In rollback-journal mode a long read would block writers, so the copy goes ``pages`` at a
    time; SQLite restarts a stepped copy when another connection writes, so after
    ``max_restarts`` restarts it falls back to one step rather than never finishing.

    ``describe=False`` makes a scratch copy, read once and removed (the backup's): no row counts in
    the result (``describe_file`` gives them), and never forced to disk, as nothing relies on it
    surviving a crash: the page cache serves its readers, and the writers' fsyncs do not queue behind it.
    """
    src = open_existing(src_path)
    try:
        journal_mode = src.execute("PRAGMA journal_mode").fetchone()[0].lower()
        dest = sqlite3.connect(dest_path)
        try:
            if not describe:
                dest.execute("PRAGMA synchronous=OFF")
            restarts = 0
            if journal_mode == "wal":
                src.backup(dest, pages=-1)
            else:
                state = {"remaining": None, "restarts": 0}

                def progress(_status: int, remaining: int, _total: int) -> None:
                    if state["remaining"] is not None and remaining > state["remaining"]:
                        state["restarts"] += 1
                        if state["restarts"] > max_restarts:
                            raise _RestartLimit
                    state["remaining"] = remaining

                try:
                    src.backup(dest, pages=pages, progress=progress, sleep=sleep)
                except _RestartLimit:
                    src.backup(dest, pages=-1)
                restarts = state["restarts"]
            # The copy must stand alone as one file: no WAL beside it.
            dest.execute("PRAGMA journal_mode=DELETE")
            info = describe_database(dest) if describe else {}
        finally:
            dest.close()
    except sqlite3.Error as exc:
        raise BackupError(f"online copy of {src_path} failed: {exc}") from exc
    finally:
        src.close()
    _match_owner(src_path)
    if describe:
        with open(dest_path, "rb+") as handle:
            os.fsync(handle.fileno())
    info["journal_mode"] = journal_mode
    info["restarts"] = restarts
    return info


def _match_owner(db_path: str) -> None:
    """A -wal or -shm file this (root) process created must belong to the database's owner, or the
    backend (another user) could no longer open its own database."""
    if os.geteuid() != 0:
        return
    owner = os.stat(db_path)
    for side in ("-wal", "-shm"):
        try:
            stat = os.stat(db_path + side)
        except FileNotFoundError:
            continue
        if (stat.st_uid, stat.st_gid) != (owner.st_uid, owner.st_gid):
            os.chown(db_path + side, owner.st_uid, owner.st_gid)


class _RestartLimit(Exception):
    pass


# --------------------------------------------------------------------------- S3


# The s3 option of both modules (AnsibleModule argument_spec form).
S3_ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "bucket": {"type": "str", "required": True},
    "prefix": {"type": "str", "default": ""},
    "endpoint_url": {"type": "str"},
    "region": {"type": "str"},
    "access_key": {"type": "str", "no_log": True},
    "secret_key": {"type": "str", "no_log": True},
    "session_token": {"type": "str", "no_log": True},
    "sse": {"type": "str", "choices": ["AES256", "aws:kms"]},
    "sse_kms_key_id": {"type": "str"},
}


@dataclass
class S3Target:
    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None
    access_key: str | None = None
    secret_key: str | None = None
    session_token: str | None = None
    sse: str | None = None
    sse_kms_key_id: str | None = None
    connect_timeout: float = 5.0
    _client: Any = field(default=None, repr=False)

    def client(self) -> Any:
        if self._client is None:
            try:
                import boto3
                from botocore.config import Config
            except ImportError as exc:  # pragma: no cover - depends on the host
                raise BackupError("S3 uploads need boto3 (Debian: python3-boto3)") from exc
            config = Config(
                connect_timeout=self.connect_timeout,
                read_timeout=60,
                retries={"max_attempts": 3, "mode": "standard"},
                s3={"addressing_style": "path"} if self.endpoint_url else None,
            )
            self._client = boto3.client(
                "s3",
                endpoint_url=self.endpoint_url or None,
                region_name=self.region or None,
                aws_access_key_id=self.access_key or None,
                aws_secret_access_key=self.secret_key or None,
                aws_session_token=self.session_token or None,
                config=config,
            )
        return self._client

    def key(self, filename: str) -> str:
        prefix = self.prefix.strip("/")
        return f"{prefix}/{filename}" if prefix else filename

    def uri(self, filename: str) -> str:
        return f"s3://{self.bucket}/{self.key(filename)}"

    def _extra(self) -> dict[str, str]:
        extra: dict[str, str] = {}
        if self.sse:
            extra["ServerSideEncryption"] = self.sse
            if self.sse == "aws:kms" and self.sse_kms_key_id:
                extra["SSEKMSKeyId"] = self.sse_kms_key_id
        return extra

    def upload(self, path: str, filename: str) -> None:
        self.client().upload_file(path, self.bucket, self.key(filename), ExtraArgs=self._extra() or None)

    def put_bytes(self, data: bytes, filename: str) -> None:
        self.client().put_object(Bucket=self.bucket, Key=self.key(filename), Body=data, **self._extra())

    def get_bytes(self, filename: str) -> bytes:
        return self.client().get_object(Bucket=self.bucket, Key=self.key(filename))["Body"].read()

    def download(self, filename: str, dest: str) -> None:
        self.client().download_file(self.bucket, self.key(filename), dest)

    def list_names(self) -> list[str]:
        prefix = self.prefix.strip("/")
        prefix = f"{prefix}/" if prefix else ""
        names: list[str] = []
        paginator = self.client().get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                rest = obj["Key"][len(prefix) :]
                if "/" not in rest:
                    names.append(rest)
        return names

    def delete(self, filenames: Iterable[str]) -> None:
        keys = [{"Key": self.key(name)} for name in filenames]
        for start in range(0, len(keys), 1000):
            answer = self.client().delete_objects(
                Bucket=self.bucket, Delete={"Objects": keys[start : start + 1000], "Quiet": True}
            )
            if answer.get("Errors"):
                raise BackupError(f"deleting from s3://{self.bucket} failed: {answer['Errors'][:3]}")


def s3_from_dict(options: dict[str, Any] | None) -> S3Target | None:
    if not options or not options.get("bucket"):
        return None
    if bool(options.get("access_key")) != bool(options.get("secret_key")):
        raise BackupError("s3: access_key and secret_key go together")
    if options.get("sse") and options["sse"] not in SSE_CHOICES:
        raise BackupError(f"s3: sse must be one of {', '.join(SSE_CHOICES)}")
    known = {
        k: options.get(k) for k in S3Target.__dataclass_fields__ if not k.startswith("_") and k in options
    }
    return S3Target(**known)


# --------------------------------------------------------------------------- catalogue


@dataclass
class Backup:
    """One complete backup as its manifest describes it."""

    manifest: dict[str, Any]
    # False when the data file's size differs from the manifest's: damaged, never "verified"
    size_ok: bool = True

    @property
    def name(self) -> str:
        return self.manifest["name"]

    @functools.cached_property
    def created(self) -> dt.datetime:
        return parse_iso(self.manifest["created"])

    @property
    def file(self) -> str:
        return self.manifest["file"]

    @property
    def manifest_file(self) -> str:
        return f"{self.name}.json"

    @property
    def sealed_file(self) -> str | None:
        sealed = self.manifest.get("sealed")
        return sealed["file"] if sealed else None

    @property
    def verified(self) -> bool:
        return self.manifest.get("integrity_check") == "ok" and self.size_ok


def _parse_manifest(raw: bytes, origin: str) -> dict[str, Any]:
    """A manifest of ours, or VerificationError saying why ``raw`` is not one."""
    try:
        manifest = json.loads(raw)
    except ValueError as exc:
        raise VerificationError(f"manifest {origin} is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict):
        raise VerificationError(f"manifest {origin} is not a JSON object")
    # An offsite manifest of an encrypted backup is sealed: the details are in its encrypted sidecar.
    sealed = manifest.get("sealed")
    required = ("name", "created", "file", "sha256") + (() if sealed else ("db_sha256", "compression"))
    for key in required:
        if not isinstance(manifest.get(key), str):
            raise VerificationError(f"manifest {origin} lacks {key!r}")
    name, filename = manifest["name"], manifest["file"]
    if not NAME_RE.match(name) or not NAME_RE.match(filename) or not filename.startswith(f"{name}.db"):
        raise VerificationError(f"manifest {origin} names no backup file of ours")
    if manifest.get("format", 1) not in READABLE_FORMATS:
        raise VerificationError(
            f"manifest {origin} is of format {manifest.get('format')!r}; this version reads formats "
            f"{', '.join(map(str, READABLE_FORMATS))} (a newer tengen-backup made it)"
        )
    compression = manifest.get("compression")
    if compression is not None:
        suffix = COMPRESSIONS.get(compression) if isinstance(compression, str) else None
        if suffix is None:
            raise VerificationError(f"manifest {origin}: unknown compression {compression!r}")
        if filename.removesuffix(".enc") != f"{name}.db{suffix}":
            raise VerificationError(
                f"manifest {origin}: {filename} is not the file of a {compression} backup"
            )
    if sealed is not None and (
        not isinstance(sealed, dict)
        or sealed.get("file") != f"{name}{SEALED_SUFFIX}"
        or not isinstance(sealed.get("sha256"), str)
        or not isinstance(manifest.get("encryption"), dict)
    ):
        raise VerificationError(f"manifest {origin}: a sealed manifest without its sidecar or key id")
    try:
        parse_iso(manifest["created"])
    except ValueError as exc:
        raise VerificationError(f"manifest {origin}: bad time {manifest['created']!r}") from exc
    return manifest


def list_local(backup_dir: str) -> list[Backup]:
    """Local backups with a manifest and a data file, oldest first (damaged ones too: restoring
    one must fail loudly, not fall back quietly to an older backup)."""
    found: list[Backup] = []
    if not os.path.isdir(backup_dir):
        return found
    for entry in sorted(os.listdir(backup_dir)):
        if not entry.endswith(".json") or entry.startswith(".") or entry == "status.json":
            continue
        path = os.path.join(backup_dir, entry)
        try:
            with open(path, "rb") as handle:
                manifest = _parse_manifest(handle.read(), path)
        except (OSError, VerificationError):
            continue
        data = os.path.join(backup_dir, manifest["file"])
        if os.path.isfile(data):
            found.append(Backup(manifest, size_ok=os.path.getsize(data) == manifest.get("file_size")))
    found.sort(key=lambda b: (b.created, b.name))
    return found


def list_s3(target: S3Target, skipped: list[str] | None = None) -> list[Backup]:
    """Backups in the bucket, oldest first. Objects that are not manifests of ours (another tool's
    JSON, a hand-made note, a manifest whose data file is missing) are skipped and logged, so that
    one stray object never stops a restore, a drill or retention; their names go to ``skipped``."""
    names = set(target.list_names())
    found: list[Backup] = []
    for name in sorted(names):
        if not name.endswith(".json"):
            continue
        try:
            manifest = _parse_manifest(target.get_bytes(name), target.uri(name))
        except VerificationError as exc:
            _skip(skipped, name, str(exc))
            continue
        if manifest["name"] + ".json" != name:
            _skip(skipped, name, f"{target.uri(name)} describes {manifest['name']}, not itself")
            continue
        backup = Backup(manifest)
        if backup.file in names and (backup.sealed_file is None or backup.sealed_file in names):
            found.append(backup)
    found.sort(key=lambda b: (b.created, b.name))
    return found


def _skip(skipped: list[str] | None, name: str, why: str) -> None:
    LOG.warning("skipped, not a backup of ours: %s", why)
    if skipped is not None:
        skipped.append(name)


# --------------------------------------------------------------------------- retention


@dataclass
class Retention:
    last: int = 4
    hourly: int = 24
    daily: int = 7
    weekly: int = 4
    monthly: int = 6

    def __post_init__(self) -> None:
        for period in ("last", "hourly", "daily", "weekly", "monthly"):
            value = getattr(self, period)
            if not isinstance(value, int) or value < 1:
                raise BackupError(f"retention {period} must be an integer >= 1, got {value!r}")


PERIODS: dict[str, Callable[[dt.datetime], tuple[int, ...]]] = {
    "hourly": lambda t: (t.year, t.month, t.day, t.hour),
    "daily": lambda t: (t.year, t.month, t.day),
    "weekly": lambda t: tuple(t.isocalendar()[:2]),
    "monthly": lambda t: (t.year, t.month),
}


def plan_retention(backups: list[Backup], retention: Retention) -> tuple[list[Backup], list[Backup]]:
    """Split backups into (keep, delete) by generations.

    The newest ``last`` backups are kept (fine-grained recent history), and for each period the
    newest backup of each of the last N periods that hold a backup (grandfather-father-son).
    The newest verified backup is always kept, whatever the counts.
    """
    ordered = sorted(backups, key=lambda b: (b.created, b.name), reverse=True)
    keep: set[str] = {b.name for b in ordered[: retention.last]}
    for period, bucket_of in PERIODS.items():
        seen: list[tuple[int, ...]] = []
        limit = getattr(retention, period)
        for backup in ordered:
            bucket = bucket_of(backup.created)
            if bucket in seen:
                continue
            if len(seen) >= limit:
                break
            seen.append(bucket)
            keep.add(backup.name)
    newest_verified = next((b for b in ordered if b.verified), None)
    if newest_verified is not None:
        keep.add(newest_verified.name)
    kept = [b for b in reversed(ordered) if b.name in keep]
    dropped = [b for b in reversed(ordered) if b.name not in keep]
    return kept, dropped


def cap_count(backups: list[Backup], max_count: int) -> tuple[list[Backup], list[Backup]]:
    """Split backups into (keep, delete): the newest ``max_count``, and always the newest verified one
    (so at most ``max_count + 1`` stay when the newest ones failed verification)."""
    if max_count < 1:
        raise BackupError(f"the local maximum must be at least 1, got {max_count!r}")
    ordered = sorted(backups, key=lambda b: (b.created, b.name), reverse=True)
    keep = {b.name for b in ordered[:max_count]}
    newest_verified = next((b for b in ordered if b.verified), None)
    if newest_verified is not None:
        keep.add(newest_verified.name)
    return [b for b in reversed(ordered) if b.name in keep], [
        b for b in reversed(ordered) if b.name not in keep
    ]


def prune_local(
    backup_dir: str, retention: Retention | None, dry_run: bool = False, max_count: int | None = None
) -> list[str]:
    """Apply retention (generations) and then the disk's cap on the count of local backups."""
    kept = list_local(backup_dir)
    dropped: list[Backup] = []
    if retention is not None:
        kept, dropped = plan_retention(kept, retention)
    if max_count:
        kept, over = cap_count(kept, max_count)
        dropped += over
    if not dry_run:
        for backup in dropped:
            # The manifest goes first: a data file without one is never taken for a backup.
            for filename in (backup.manifest_file, backup.file):
                try:
                    os.unlink(os.path.join(backup_dir, filename))
                except FileNotFoundError:
                    pass
        if dropped:
            fsync_dir(backup_dir)
    return [b.name for b in dropped]


def prune_s3(
    target: S3Target, retention: Retention, dry_run: bool = False, skipped: list[str] | None = None
) -> list[str]:
    """Apply retention in the bucket; objects that are not backups of ours are never touched."""
    _, dropped = plan_retention(list_s3(target, skipped), retention)
    if dropped and not dry_run:
        target.delete([b.manifest_file for b in dropped])
        target.delete([b.file for b in dropped] + [b.sealed_file for b in dropped if b.sealed_file])
    return [b.name for b in dropped]


def clean_stale_temp(directory: str, older_than: float = 3600.0) -> list[str]:
    """Remove temporary files an interrupted run left behind (never a complete backup)."""
    removed: list[str] = []
    if not os.path.isdir(directory):
        return removed
    cutoff = time.time() - older_than
    for entry in os.listdir(directory):
        path = os.path.join(directory, entry)
        if entry.startswith(TMP_PREFIX) and os.path.isfile(path) and os.path.getmtime(path) < cutoff:
            os.unlink(path)
            removed.append(entry)
    return removed


# --------------------------------------------------------------------------- backup


@dataclass
class BackupResult:
    manifest: dict[str, Any]
    path: str
    manifest_path: str
    uploaded: bool = False
    s3_uri: str | None = None
    upload_error: str | None = None
    pruned_local: list[str] = field(default_factory=list)
    pruned_s3: list[str] = field(default_factory=list)
    skipped_s3: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.manifest["name"],
            "path": self.path,
            "manifest_path": self.manifest_path,
            "manifest": self.manifest,
            "uploaded": self.uploaded,
            "s3_uri": self.s3_uri,
            "upload_error": self.upload_error,
            "pruned_local": self.pruned_local,
            "pruned_s3": self.pruned_s3,
            "skipped_s3": self.skipped_s3,
        }


def _unique_name(backup_dir: str, prefix: str, moment: dt.datetime) -> str:
    base = f"{prefix}-{moment.strftime('%Y%m%dT%H%M%SZ')}"
    name, n = base, 1
    while os.path.exists(os.path.join(backup_dir, f"{name}.json")):
        name, n = f"{base}-{n}", n + 1
    return name


def compression_threads() -> int:
    """The CPUs this process may run on: zstd's worker threads."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _zstd_command() -> str:
    found = shutil.which("zstd")
    if found is None:
        raise BackupError("zstd backups need the zstd command (Debian: apt-get install zstd)")
    return found


class FilterError(Exception):
    """A compressor or decompressor refused its input (the message is its own)."""


class _ZstdPipe:
    """The ``zstd`` command as a filter: ``write`` feeds its stdin, a thread hands each piece of its
    stdout to ``emit``. zstd works on its own threads, so compression (or decompression), the
    checksums and the disk writes overlap instead of taking turns."""

    def __init__(self, args: list[str], emit: Callable[[bytes], Any]) -> None:
        self.emit = emit
        self.error: BaseException | None = None
        self.closed = False
        self.proc = subprocess.Popen(
            [_zstd_command(), "-q", "-c", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
        )
        for pipe in (self.proc.stdin, self.proc.stdout):
            _widen_pipe(pipe.fileno())  # type: ignore[union-attr]
        self.reader = threading.Thread(target=self._drain, name="zstd-out", daemon=True)
        self.reader.start()

    def _drain(self) -> None:
        fd = self.proc.stdout.fileno()  # type: ignore[union-attr]
        try:
            while chunk := os.read(fd, CHUNK):
                self.emit(chunk)
        except BaseException as exc:  # the disk is full, the output too large...: stop zstd, report
            self.error = exc
            self.proc.kill()

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        fd = self.proc.stdin.fileno()  # type: ignore[union-attr]
        try:
            while view:
                view = view[os.write(fd, view) :]
        except BrokenPipeError:
            self.close()  # raises what stopped zstd
            raise FilterError("zstd stopped reading its input") from None
        return len(data)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.proc.stdin.close()  # type: ignore[union-attr]
        self.reader.join()
        stderr = self.proc.stderr.read() if self.proc.stderr else b""  # type: ignore[union-attr]
        code = self.proc.wait()
        self.proc.stdout.close()  # type: ignore[union-attr]
        self.proc.stderr.close()  # type: ignore[union-attr]
        if self.error is not None:
            raise self.error
        if code != 0:
            raise FilterError(f"zstd: {stderr.decode(errors='replace').strip() or f'exit status {code}'}")

    def abort(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.close()
        except (FilterError, OSError, BackupError):
            pass


def _widen_pipe(fd: int) -> None:
    """1 MiB pipes rather than 64 KiB: fewer switches between zstd and this process."""
    try:
        import fcntl

        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), CHUNK)
    except OSError:
        pass  # a lower limit in /proc/sys/fs/pipe-max-size: the default size works, more slowly


class _Decoder:
    """gzip or lzma decompression in this process, fed piece by piece (members one after another,
    as gzip and xz allow); ``close`` fails on a truncated stream."""

    def __init__(self, compression: str, emit: Callable[[bytes], Any]) -> None:
        self.compression = compression
        self.emit = emit
        self.engine = self._new()

    def _new(self) -> Any:
        if self.compression == "gzip":
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        if self.compression == "lzma":
            return lzma.LZMADecompressor()
        return None

    def write(self, data: bytes) -> int:
        size = len(data)
        if self.engine is None:
            self.emit(data)
            return size
        while data:
            if self.engine.eof:  # the next member
                self.engine = self._new()
            self.emit(self.engine.decompress(data))
            data = self.engine.unused_data if self.engine.eof else b""
        return size

    def close(self) -> None:
        if self.engine is not None and not self.engine.eof:
            raise FilterError("the compressed stream ends early (truncated)")

    def abort(self) -> None:
        pass


def _decoder(compression: str, emit: Callable[[bytes], Any]) -> _ZstdPipe | _Decoder:
    if compression == "zstd":
        return _ZstdPipe(["-d"], emit)
    if compression in ("gzip", "lzma", "none"):
        return _Decoder(compression, emit)
    raise VerificationError(f"unknown compression {compression!r}")


def _compressor(compression: str, sink: IO[bytes]) -> IO[bytes]:
    if compression == "zstd":
        return _ZstdPipe([f"-{ZSTD_LEVEL}", f"-T{compression_threads()}"], sink.write)  # type: ignore[return-value]
    if compression == "gzip":
        return gzip.GzipFile(fileobj=sink, mode="wb", compresslevel=6, mtime=0)  # type: ignore[return-value]
    if compression == "lzma":
        return lzma.LZMAFile(sink, mode="wb", preset=6)  # type: ignore[return-value]
    return _Passthrough(sink)  # type: ignore[return-value]


class _Passthrough:
    def __init__(self, sink: IO[bytes]) -> None:
        self.sink = sink

    def write(self, data: bytes) -> int:
        return self.sink.write(data)

    def close(self) -> None:
        pass


def _compress_file(src_path: str, compression: str, sink: _EncryptingHashingSink) -> tuple[int, str]:
    """Compress ``src_path`` into ``sink`` in one read that also hashes it: (its size, its sha256)."""
    digest = hashlib.sha256()
    size = 0
    stream = _compressor(compression, sink)  # type: ignore[arg-type]
    try:
        with open(src_path, "rb") as src:
            while chunk := src.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
                stream.write(chunk)
        stream.close()
    except BaseException:
        abort = getattr(stream, "abort", None)
        if abort is not None:
            abort()
        raise
    sink.finish()
    return size, digest.hexdigest()


class _EncryptingHashingSink:
    """Receives the compressed stream, encrypts it if a key is set, writes and hashes the result."""

    def __init__(self, out: IO[bytes], key: bytes | None) -> None:
        self.out = out
        self.digest = hashlib.sha256()
        self.size = 0
        self.encryptor = None
        if key is not None:
            nonce = os.urandom(NONCE_LEN)
            self.encryptor = _aes_gcm(key, nonce)
            self._emit(ENC_MAGIC + nonce)

    def _emit(self, data: bytes) -> None:
        if data:
            self.out.write(data)
            self.digest.update(data)
            self.size += len(data)

    def write(self, data: bytes) -> int:
        self._emit(self.encryptor.update(data) if self.encryptor else data)
        return len(data)

    def flush(self) -> None:
        pass

    def finish(self) -> None:
        if self.encryptor is not None:
            self._emit(self.encryptor.finalize())
            self._emit(self.encryptor.tag)


def create_backup(
    db_path: str,
    backup_dir: str,
    *,
    prefix: str | None = None,
    compression: str = "zstd",
    key: KeyInput = None,
    s3: S3Target | None = None,
    retention: Retention | None = None,
    now: dt.datetime | None = None,
    pages: int = 1024,
    allow_plaintext_offsite: bool = False,
    max_local: int | None = None,
    min_free_mb: int = 0,
) -> BackupResult:
    """Make one verified backup of ``db_path`` in ``backup_dir``, upload it, apply retention.

    Raises BackupError when the backup itself fails (nothing complete is left behind), also when
    the backup could leave less than ``min_free_mb`` free. An upload failure does not raise: the
    local backup is kept, local retention and the ``max_local`` cap still apply (the newest verified
    backup always stays), nothing is pruned in the bucket, and ``upload_error`` says what went wrong.
    """
    if compression not in COMPRESSIONS:
        raise BackupError(f"compression must be one of {', '.join(COMPRESSIONS)}")
    if compression == "zstd":
        _zstd_command()  # missing: refused before anything is written
    ring = load_keys(key)  # the newest key encrypts
    raw_key = ring[0] if ring else None
    check_offsite_encryption(s3, raw_key is not None, allow_plaintext_offsite)
    if not os.path.isfile(db_path):
        raise BackupError(f"database {db_path} does not exist")
    prefix = prefix or os.path.splitext(os.path.basename(db_path))[0]
    if not NAME_RE.match(prefix):
        raise BackupError(f"backup name prefix {prefix!r} may hold only letters, digits, '.', '_' and '-'")
    if max_local is not None and max_local < 1:
        raise BackupError(f"max_local must be at least 1, got {max_local!r}")
    os.makedirs(backup_dir, mode=0o700, exist_ok=True)
    with _dir_lock(backup_dir):
        # the copy and the compressed file each take at most the database's size (with its WAL)
        db_bytes = sum(os.path.getsize(p) for p in (db_path, db_path + "-wal") if os.path.isfile(p))
        check_free_space(backup_dir, 2 * db_bytes, min_free_mb, f"a backup of {db_path}")
        return _create_backup_locked(
            db_path, backup_dir, prefix, compression, raw_key, s3, retention, now, pages, max_local
        )


def check_free_space(directory: str, needed_bytes: int, min_free_mb: int, what: str) -> None:
    """Refuse, before writing, work that would leave less than ``min_free_mb`` MiB free: a full disk
    would stop the database (the backend's own writes) too, not just the backup. 0: no check (a disk
    that fills anyway still leaves no half-written file, as every write is atomic)."""
    if min_free_mb <= 0:
        return
    free = shutil.disk_usage(directory).free
    reserve = max(min_free_mb, 0) * 1024 * 1024
    if free - needed_bytes < reserve:
        mib = 1024 * 1024
        raise BackupError(
            f"not enough free space in {directory}: {free // mib} MiB free, {what} needs up to "
            f"{-(-needed_bytes // mib)} MiB and {min_free_mb} MiB must stay free "
            "(sqlite_backup_min_free_mb); nothing was written"
        )


@contextmanager
def _dir_lock(directory: str) -> Iterator[None]:
    """One backup at a time per directory (the timer and an on-demand run may meet)."""
    import fcntl

    fd = os.open(os.path.join(directory, ".lock"), os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _create_backup_locked(
    db_path: str,
    backup_dir: str,
    prefix: str,
    compression: str,
    raw_key: bytes | None,
    s3: S3Target | None,
    retention: Retention | None,
    now: dt.datetime | None,
    pages: int,
    max_local: int | None = None,
) -> BackupResult:
    clean_stale_temp(backup_dir)
    started = time.monotonic()
    moment = now or utcnow()
    name = _unique_name(backup_dir, prefix, moment)
    filename = f"{name}.db{COMPRESSIONS[compression]}{'.enc' if raw_key else ''}"
    path = os.path.join(backup_dir, filename)
    manifest_path = os.path.join(backup_dir, f"{name}.json")

    fd, copy_path = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=".db", dir=backup_dir)
    os.close(fd)
    os.unlink(copy_path)  # sqlite3 must create the file itself
    try:
        try:
            info = online_copy(db_path, copy_path, pages=pages, describe=False)
            # The copy is read three times at once, from the page cache: integrity_check and the row
            # and move counts on threads of their own (SQLite releases the GIL) while it is compressed.
            with ThreadPoolExecutor(max_workers=2, thread_name_prefix="backup-check") as pool:
                checking = pool.submit(integrity_check, copy_path)
                describing = pool.submit(describe_file, copy_path)
                try:
                    with atomic_file(path) as out:
                        sink = _EncryptingHashingSink(out, raw_key)
                        db_size, db_sha256 = _compress_file(copy_path, compression, sink)
                        check = checking.result()
                        if check != "ok":
                            raise VerificationError(f"the copy of {db_path} failed integrity_check: {check}")
                        info.update(describing.result())
                except BaseException:
                    checking.cancel()
                    describing.cancel()
                    raise
        except FilterError as exc:
            raise BackupError(f"compressing the backup failed: {exc}") from exc
        except OSError as exc:
            raise BackupError(f"writing the backup to {backup_dir} failed: {exc}") from exc
        except sqlite3.Error as exc:
            raise BackupError(f"reading the copy of {db_path} failed: {exc}") from exc
        manifest = {
            "format": FORMAT_VERSION,
            "name": name,
            "created": iso(moment),
            "host": socket.getfqdn(),
            "source": os.path.abspath(db_path),
            "file": filename,
            "file_size": sink.size,
            "sha256": sink.digest.hexdigest(),
            "db_size": db_size,
            "db_sha256": db_sha256,
            "compression": compression,
            "encryption": {"algorithm": "AES-256-GCM", "key_id": key_id(raw_key)} if raw_key else None,
            "integrity_check": check,
            "duration_seconds": round(time.monotonic() - started, 3),
            **info,
        }
        try:
            atomic_write_bytes(manifest_path, json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n")
        except OSError as exc:
            _unlink_quiet(path)
            raise BackupError(f"writing the manifest to {backup_dir} failed: {exc}") from exc
    finally:
        for leftover in (copy_path, copy_path + "-journal", copy_path + "-wal", copy_path + "-shm"):
            _unlink_quiet(leftover)

    result = BackupResult(manifest=manifest, path=path, manifest_path=manifest_path)
    if s3 is not None:
        result.s3_uri = s3.uri(filename)
        try:
            s3.upload(path, filename)
            if raw_key is not None:
                public, sidecar = seal_manifest(manifest, raw_key)
                s3.put_bytes(sidecar, f"{name}{SEALED_SUFFIX}")
                s3.put_bytes(public, f"{name}.json")  # last: its presence marks the upload complete
            else:
                s3.upload(manifest_path, f"{name}.json")  # last: its presence marks the upload complete
            result.uploaded = True
        except Exception as exc:  # botocore raises many kinds; all mean the same here
            result.upload_error = f"upload to {s3.uri(filename)} failed: {exc}"
    # Local retention runs whether or not the upload worked: while the bucket fails, the local disk
    # keeps the same generations it keeps otherwise (what retention would drop from the bucket anyway),
    # and the cap bounds the count, so an outage of the bucket never fills the disk.
    if retention is not None or max_local:
        result.pruned_local = prune_local(backup_dir, retention, max_count=max_local)
    if retention is not None and not result.upload_error:
        if s3 is not None and result.uploaded:
            try:
                result.pruned_s3 = prune_s3(s3, retention, skipped=result.skipped_s3)
            except Exception as exc:
                result.upload_error = f"retention in s3://{s3.bucket} failed: {exc}"
    return result


def seal_manifest(manifest: dict[str, Any], key: bytes) -> tuple[bytes, bytes]:
    """The offsite form of an encrypted backup's manifest: a minimal manifest in clear, and the whole
    manifest (host, source path, tables and row counts, schema version...) in an encrypted sidecar."""
    sidecar = seal_bytes(key, json.dumps(manifest, sort_keys=True).encode())
    public = {k: manifest[k] for k in PUBLIC_MANIFEST_KEYS if k in manifest}
    public["sealed"] = {
        "file": f"{manifest['name']}{SEALED_SUFFIX}",
        "sha256": hashlib.sha256(sidecar).hexdigest(),
    }
    return json.dumps(public, indent=2, sort_keys=True).encode() + b"\n", sidecar


def unseal_manifest(public: dict[str, Any], sidecar: bytes, keys: KeyInput, origin: str) -> dict[str, Any]:
    """The whole manifest from the sidecar, checked against the clear one it must agree with."""
    if hashlib.sha256(sidecar).hexdigest() != public["sealed"]["sha256"]:
        raise VerificationError(f"{origin}: sha256 does not match the manifest (corrupted or replaced)")
    full = _parse_manifest(open_sealed(pick_key(keys, public), sidecar, origin), origin)
    for k in PUBLIC_MANIFEST_KEYS:
        if k in public and full.get(k) != public[k]:
            raise VerificationError(f"{origin}: the sealed manifest disagrees with the clear one on {k!r}")
    return full


def _unlink_quiet(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


# --------------------------------------------------------------------------- restore


def find_backup(backups: list[Backup], wanted: str = "latest") -> Backup:
    if not backups:
        raise BackupError("no complete backup found")
    if wanted in ("", "latest"):
        verified = [b for b in backups if b.manifest.get("integrity_check") == "ok"]
        if not verified:
            raise BackupError("no verified backup found")
        return verified[-1]
    for backup in backups:
        if wanted in (backup.name, backup.file, backup.manifest_file):
            return backup
    raise BackupError(f"no backup named {wanted!r} (have: {', '.join(b.name for b in backups[-5:])} ...)")


def unpack_backup(
    data_path: str, manifest: dict[str, Any], dest_path: str, key: KeyInput = None
) -> dict[str, Any]:
    """Verify a backup file and write the database it holds to ``dest_path``, atomically.

    Checks, each failing loudly with VerificationError: the key's fingerprint, then the file's sha256
    against the manifest (a mismatch is reported before anything else found wrong), decryption (GCM
    tag), decompression, the database's size and sha256, PRAGMA integrity_check, and the row and move
    counts. The file is read once: hashed, decrypted and decompressed in the same pass.
    ``dest_path`` appears only when every check passed.
    """
    raw_key = pick_key(key, manifest)
    encryption = manifest.get("encryption")
    directory = os.path.dirname(os.path.abspath(dest_path))
    db_fd, db_tmp = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=".db", dir=directory)
    try:
        with os.fdopen(db_fd, "wb") as out:
            db_size, db_sha256 = _unpack_to(data_path, manifest, raw_key if encryption else None, out)
            if db_sha256 != manifest["db_sha256"]:
                raise VerificationError(
                    f"{manifest['name']}: the database's sha256 does not match the manifest"
                )
            # Forced to disk while it is checked: integrity_check and the counts read the page cache.
            with ThreadPoolExecutor(max_workers=2, thread_name_prefix="restore-check") as pool:
                checking = pool.submit(integrity_check, db_tmp)
                counting = pool.submit(_count_file, db_tmp)
                os.fsync(out.fileno())
                check = checking.result()
                tables, moves = counting.result() if check == "ok" else ({}, None)
        if check != "ok":
            raise VerificationError(f"{manifest['name']}: integrity_check failed: {check}")
        if "tables" in manifest and tables != manifest["tables"]:
            raise VerificationError(f"{manifest['name']}: row counts differ from the manifest")
        if manifest.get("game_moves") and moves != manifest["game_moves"]:
            raise VerificationError(f"{manifest['name']}: the games' move counts differ from the manifest")
        os.replace(db_tmp, dest_path)
        fsync_dir(directory)
    finally:
        _unlink_quiet(db_tmp)
    return {"name": manifest["name"], "path": dest_path, "integrity_check": "ok", "tables": tables}


def _count_file(path: str) -> tuple[dict[str, int], dict[str, Any] | None]:
    conn = open_existing(path, readonly=True)
    try:
        tables = table_row_counts(conn)
    finally:
        conn.close()
    return tables, summarize_moves(game_move_counts_file(path))


def _unpack_to(
    data_path: str, manifest: dict[str, Any], key: bytes | None, out: IO[bytes]
) -> tuple[int, str]:
    """Read the backup file once: hash it, decrypt it, decompress it into ``out`` while hashing the
    database. (The database's size, its sha256.) Whatever else went wrong, a file whose sha256
    differs from the manifest's is reported as such."""
    name = manifest["name"]
    file_digest = hashlib.sha256()
    db_digest = hashlib.sha256()
    limit = manifest.get("db_size")
    written = 0

    def emit(data: bytes) -> None:
        nonlocal written
        written += len(data)
        if isinstance(limit, int) and written > limit:  # a damaged or forged file never fills the disk
            raise VerificationError(f"{name}: the backup holds more than the manifest's {limit} bytes")
        db_digest.update(data)
        out.write(data)

    failure: BaseException | None = None
    with open(data_path, "rb") as src:
        try:
            decoder = _decoder(manifest["compression"], emit)
        except BackupError as exc:
            failure, decoder = exc, None
        try:
            if decoder is not None:
                _decrypt_into(src, data_path, key, file_digest, decoder.write)
                decoder.close()
        except (FilterError, EOFError, lzma.LZMAError, zlib.error) as exc:
            failure = VerificationError(f"{name}: decompression failed: {exc}")
        except VerificationError as exc:
            failure = exc
        finally:
            if failure is not None and decoder is not None:
                decoder.abort()
        if failure is not None:  # the rest of the file, for its checksum
            while chunk := src.read(CHUNK):
                file_digest.update(chunk)
    if file_digest.hexdigest() != manifest["sha256"]:
        raise VerificationError(f"{data_path}: sha256 does not match the manifest (corrupted or truncated)")
    if failure is not None:
        raise failure
    if isinstance(limit, int) and written != limit:
        raise VerificationError(f"{name}: the backup holds {written} bytes, the manifest says {limit}")
    return written, db_digest.hexdigest()


def _decrypt_into(
    src: IO[bytes], data_path: str, key: bytes | None, digest: Any, emit: Callable[[bytes], Any]
) -> None:
    """Stream the file from ``src`` to ``emit``, decrypted when ``key`` is set, hashing every byte
    read into ``digest``. The GCM tag (the last bytes) is checked at the end."""
    if key is None:
        while chunk := src.read(CHUNK):
            digest.update(chunk)
            emit(chunk)
        return
    size = os.fstat(src.fileno()).st_size
    header = src.read(len(ENC_MAGIC) + NONCE_LEN)
    digest.update(header)
    if size < len(ENC_MAGIC) + NONCE_LEN + TAG_LEN or not header.startswith(ENC_MAGIC):
        raise VerificationError(f"{data_path}: not an encrypted backup")
    tag = os.pread(src.fileno(), TAG_LEN, size - TAG_LEN)
    decryptor = _aes_gcm(key, header[len(ENC_MAGIC) :], tag)
    remaining = size - len(header) - TAG_LEN
    while remaining:
        chunk = src.read(min(CHUNK, remaining))
        if not chunk:
            raise VerificationError(f"{data_path}: the file shrank while it was read")
        remaining -= len(chunk)
        digest.update(chunk)
        emit(decryptor.update(chunk))
    digest.update(src.read(TAG_LEN))
    try:
        tail = decryptor.finalize()
    except Exception as exc:  # cryptography's InvalidTag
        raise VerificationError(f"{data_path}: decryption failed (wrong key or tampered file)") from exc
    emit(tail)


def fetch_and_unpack(
    dest_path: str,
    *,
    backup_dir: str | None = None,
    s3: S3Target | None = None,
    wanted: str = "latest",
    key: KeyInput = None,
    min_free_mb: int = 0,
) -> dict[str, Any]:
    """Pick a backup (local directory or bucket), verify it and unpack it to ``dest_path``.

    Refuses before writing when the unpacking could leave less than ``min_free_mb`` free beside
    ``dest_path`` (the download, the decrypted stream and the database are there at once)."""
    skipped: list[str] = []
    directory = os.path.dirname(os.path.abspath(dest_path))
    if s3 is not None:
        backup = find_backup(list_s3(s3, skipped), wanted)
        _check_restore_space(directory, backup.manifest, True, min_free_mb)
        fd, download = tempfile.mkstemp(prefix=TMP_PREFIX, dir=directory)
        os.close(fd)
        manifest = backup.manifest
        try:
            if backup.sealed_file:
                sealed = backup.sealed_file
                manifest = unseal_manifest(manifest, s3.get_bytes(sealed), key, s3.uri(sealed))
            s3.download(backup.file, download)
            result = unpack_backup(download, manifest, dest_path, key)
        finally:
            _unlink_quiet(download)
        result["source"] = s3.uri(backup.file)
    else:
        if not backup_dir:
            raise BackupError("either backup_dir or s3 is needed")
        backup = find_backup(list_local(backup_dir), wanted)
        _check_restore_space(directory, backup.manifest, False, min_free_mb)
        manifest = backup.manifest
        result = unpack_backup(os.path.join(backup_dir, backup.file), manifest, dest_path, key)
        result["source"] = os.path.join(backup_dir, backup.file)
    result["manifest"] = manifest
    result["skipped"] = skipped
    return result


def _check_restore_space(directory: str, manifest: dict[str, Any], download: bool, min_free_mb: int) -> None:
    file_size = int(manifest.get("file_size") or 0)
    needed = file_size * (2 if download else 1) + int(manifest.get("db_size") or 0)
    check_free_space(directory, needed, min_free_mb, f"restoring {manifest['name']}")


def _rename(src: str, dst: str) -> None:
    """One rename, made durable: the directory is fsynced before the next step may rely on it."""
    os.replace(src, dst)
    fsync_dir(os.path.dirname(os.path.abspath(dst)))


def _checkpoint_truncate(db_path: str) -> bool:
    """Fold the WAL of a stopped database into its main file and empty the WAL.

    After this the main file alone holds every committed transaction, so moving the WAL aside can
    lose nothing whenever the process stops. True when done; False when the file is not a usable
    database (the usual reason for a restore), where there is nothing sound to fold in. A database
    still in use (a checkpoint that cannot finish) is refused: the backend was not stopped."""
    try:
        conn = sqlite3.connect(f"file:{db_path}?mode=rw", uri=True, timeout=5)
        try:
            busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise BackupError(f"{db_path} is still in use (stop the backend first); nothing swapped") from exc
        return False
    except sqlite3.DatabaseError:
        return False
    if busy:
        raise BackupError(f"{db_path} is still in use (stop the backend first); nothing swapped")
    _match_owner(db_path)
    return True


def swap_database(staged_path: str, db_path: str, keep_suffix: str) -> dict[str, Any]:
    """Put a verified, staged database in place of ``db_path``, keeping the one it replaces.

    The backend must be stopped. ``staged_path`` must be on the same filesystem as ``db_path``.
    The old database (with its -wal and -shm, which belong to it) is kept as ``db_path + keep_suffix``;
    the new one takes the old one's owner and mode and arrives in one rename.

    Crash-safe: the old WAL is first checkpointed into the old file, and the directory is fsynced
    after each link and rename, so a stop at any point (power loss included) leaves ``db_path``
    either the whole old database or the whole new one, never the new one beside the old WAL.
    """
    if integrity_check(staged_path) != "ok":
        raise VerificationError(f"{staged_path} failed integrity_check; nothing swapped")
    kept = f"{db_path}{keep_suffix}"
    if os.path.lexists(kept):
        raise BackupError(f"{kept} exists already; nothing swapped")
    directory = os.path.dirname(os.path.abspath(db_path))
    moved: list[str] = []
    if os.path.exists(db_path):
        _checkpoint_truncate(db_path)
        stat = os.stat(db_path)
        os.chown(staged_path, stat.st_uid, stat.st_gid)
        os.chmod(staged_path, stat.st_mode & 0o7777)
        os.link(db_path, kept)
        fsync_dir(directory)
        moved.append(kept)
        # The old WAL must never be replayed into the restored database: move it aside with its DB.
        for side in ("-wal", "-shm", "-journal"):
            if os.path.exists(db_path + side):
                _rename(db_path + side, kept + side)
                moved.append(kept + side)
    _rename(staged_path, db_path)
    return {"db_path": db_path, "kept": moved}


PRE_RESTORE_INFIX = ".pre-restore"


def prune_replaced(db_path: str, keep: int) -> list[str]:
    """Remove all but the newest ``keep`` replaced databases (``DB.pre-restore*``, with their -wal,
    -shm and -journal). Newest by name: the suffix carries the restore's UTC time (YYYYmmddTHHMMSSZ);
    the file's own time would be the old database's last write, not the restore's."""
    if keep < 1:
        raise BackupError(f"the count of replaced databases to keep must be at least 1, got {keep!r}")
    directory = os.path.dirname(os.path.abspath(db_path))
    stem = os.path.basename(db_path) + PRE_RESTORE_INFIX
    copies = []
    for entry in os.listdir(directory):
        path = os.path.join(directory, entry)
        if not entry.startswith(stem) or entry.endswith(("-wal", "-shm", "-journal")):
            continue
        if os.path.isfile(path) and not os.path.islink(path):
            copies.append(entry)
    removed: list[str] = []
    for entry in sorted(copies, reverse=True)[keep:]:
        for side in ("-wal", "-shm", "-journal", ""):  # the database last: never a WAL without its DB
            path = os.path.join(directory, entry + side)
            if os.path.lexists(path):
                os.unlink(path)
                removed.append(path)
    if removed:
        fsync_dir(directory)
    return removed


def compare_row_counts(restored: dict[str, int], live: dict[str, int]) -> dict[str, Any]:
    """The drill's comparison: every table of either side, with its counts and the difference."""
    tables = {}
    for name in sorted(set(restored) | set(live)):
        r, lv = restored.get(name), live.get(name)
        tables[name] = {"restored": r, "live": lv, "difference": None if r is None or lv is None else lv - r}
    return {
        "tables": tables,
        "missing_in_restored": sorted(set(live) - set(restored)),
        "missing_in_live": sorted(set(restored) - set(live)),
    }


# --------------------------------------------------------------------------- restore on the VM

# What a restore in progress must undo if it stops half-way, in the status directory (it survives a
# reboot): the backend to start again and whether the backup timer ran.
RESTORE_STATE = "restore-pending.json"
RESTORE_RESULT = "restore-result.json"
Runner = Callable[..., Any]


@dataclass
class BackendControl:
    """How the VM runs the backend: compose services (in a project directory), a systemd unit, or none."""

    kind: str = "none"
    compose_dir: str | None = None
    services: list[str] = field(default_factory=list)
    unit: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("compose", "systemd", "none"):
            raise BackupError(f"backend kind must be compose, systemd or none, not {self.kind!r}")
        if self.kind == "compose" and not self.compose_dir:
            raise BackupError("a compose backend needs its project directory")
        if self.kind == "systemd" and not self.unit:
            raise BackupError("a systemd backend needs its unit")

    def _command(self, verb: str) -> list[str] | None:
        if self.kind == "compose" and self.services:  # no services: none ran, none to stop or start
            return ["docker", "compose", verb, *self.services]
        if self.kind == "systemd":
            return ["systemctl", verb, str(self.unit)]
        return None

    def set(self, verb: str, run: Runner) -> None:
        argv = self._command(verb)
        if argv is None:
            return
        done = run(
            argv, cwd=self.compose_dir if self.kind == "compose" else None, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise BackupError(f"{' '.join(argv)} failed: {(done.stderr or done.stdout or '').strip()[-500:]}")

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "compose_dir": self.compose_dir,
            "services": self.services,
            "unit": self.unit,
        }


def _timer_active(timer: str | None, run: Runner) -> bool:
    return bool(timer) and run(["systemctl", "is-active", "--quiet", str(timer)]).returncode == 0


@contextmanager
def _wait_lock(directory: str, wait_seconds: float) -> Iterator[None]:
    """The backups' lock (a running backup finishes first), waited for at most ``wait_seconds``."""
    import fcntl

    fd = os.open(os.path.join(directory, ".lock"), os.O_CREAT | os.O_RDWR, 0o600)
    try:
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise BackupError(
                        f"a backup held {directory}/.lock for {wait_seconds:.0f} s; nothing was stopped"
                    ) from None
                time.sleep(0.5)
        yield
    finally:
        os.close(fd)


def restore_on_vm(
    staged_path: str,
    db_path: str,
    *,
    backup_dir: str,
    state_dir: str,
    keep_suffix: str,
    backend: BackendControl,
    timer: str | None = "tengen-backup.timer",
    keep_replaced: int = 2,
    lock_wait: float = 600.0,
    run: Runner | None = None,
) -> dict[str, Any]:
    """Swap a staged, verified database in, in one process on the VM that needs no controller.

    Under the backups' lock, with the backup timer stopped: stop the backend, swap (crash-safe),
    start the backend and the timer again, prune old replaced databases. Before anything stops, a
    state file records what to start again; if this process dies half-way, ``restore_recover`` (the
    unit's ExecStopPost, and a unit at boot) reads it and starts the backend and the timer.
    """
    import subprocess

    run = run or subprocess.run
    if keep_replaced < 1:
        raise BackupError(f"keep_replaced must be at least 1, got {keep_replaced!r}")
    if not os.path.isfile(staged_path):
        raise BackupError(f"no staged database at {staged_path}; nothing stopped")
    state_path = os.path.join(state_dir, RESTORE_STATE)
    with _wait_lock(backup_dir, lock_wait):
        state = {
            "started": iso(utcnow()),
            "pid": os.getpid(),
            "db_path": db_path,
            "staged": staged_path,
            "backend": backend.as_dict(),
            "timer": timer,
            "timer_was_active": _timer_active(timer, run),
        }
        os.makedirs(state_dir, exist_ok=True)
        atomic_write_bytes(state_path, json.dumps(state, indent=2).encode() + b"\n")
        try:
            if state["timer_was_active"]:
                _checked(run, ["systemctl", "stop", str(timer)])
            backend.set("stop", run)
            swapped = swap_database(staged_path, db_path, keep_suffix)
        except BaseException:
            try:  # the backend and the timer run again, on the old database
                restore_recover(state_dir, run)
            except BackupError as exc:  # the state stays: ExecStopPost or the boot unit tries again
                LOG.error("starting the backend again failed: %s", exc)
            raise
        backend.set("start", run)
        if state["timer_was_active"]:
            _checked(run, ["systemctl", "start", str(timer)])
        _unlink_quiet(state_path)
        fsync_dir(state_dir)
    swapped["pruned"] = prune_replaced(db_path, keep_replaced)
    return swapped


RESTORE_UNIT = "tengen-restore"


def restore_unit_argv(
    *,
    staged: str,
    keep_suffix: str,
    backend: dict[str, Any],
    timer: str | None,
    keep_replaced: int,
    timeout: int,
    env_file: str,
    command: str = "/usr/local/bin/tengen-backup",
) -> list[str]:
    """``systemd-run`` of ``tengen-backup restore-swap`` as a transient service of its own.

    The unit belongs to systemd, not to the SSH session: the controller dying (and this client with
    it) does not stop it. ``RuntimeMaxSec`` bounds it; ``ExecStopPost`` runs however it ends (killed
    included) and starts what a half-done restore left stopped. A second restore cannot start while
    one runs: the unit's name is taken."""
    if timeout < 1:
        raise BackupError(f"the restore timeout must be at least 1 second, got {timeout!r}")
    argv = [
        "systemd-run",
        f"--unit={RESTORE_UNIT}",
        "--description=tengen restore: stop the backend, swap the database, start it",
        "--collect",
        "--wait",
        "--quiet",
        f"--property=EnvironmentFile={env_file}",
        f"--property=RuntimeMaxSec={int(timeout)}",
        f"--property=ExecStopPost={command} restore-recover",
        command,
        "restore-swap",
        f"--staged={staged}",
        f"--keep-suffix={keep_suffix}",
        f"--backend={backend.get('kind') or 'none'}",
        f"--keep-replaced={int(keep_replaced)}",
        f"--lock-wait={max(1, int(timeout) // 2)}",  # the rest of the bound is for the swap itself
        f"--timer={timer or ''}",
    ]
    if backend.get("compose_dir"):
        argv.append(f"--compose-dir={backend['compose_dir']}")
    argv += [f"--service={name}" for name in backend.get("services") or []]
    if backend.get("unit"):
        argv.append(f"--unit={backend['unit']}")
    return argv


def _checked(run: Runner, argv: list[str]) -> None:
    done = run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise BackupError(f"{' '.join(argv)} failed: {(done.stderr or '').strip()[-500:]}")


def restore_recover(state_dir: str, run: Runner | None = None) -> dict[str, Any] | None:
    """Finish what a stopped restore left: start the backend and the timer again (on whichever whole
    database is in place), remove an unswapped staged copy. None when no restore was pending."""
    import subprocess

    run = run or subprocess.run
    state_path = os.path.join(state_dir, RESTORE_STATE)
    try:
        with open(state_path, "rb") as handle:
            state = json.loads(handle.read())
    except FileNotFoundError:
        return None
    except ValueError:
        state = {}  # a torn state file cannot be: it is written atomically; start what we can anyway
    backend = BackendControl(**state.get("backend") or {"kind": "none"})
    problems: list[str] = []
    try:
        backend.set("start", run)
    except BackupError as exc:
        problems.append(str(exc))
    if state.get("timer_was_active"):
        try:
            _checked(run, ["systemctl", "start", str(state["timer"])])
        except BackupError as exc:
            problems.append(str(exc))
    if state.get("staged"):
        _unlink_quiet(state["staged"])
    if problems:  # keep the state: the next try (at boot, or by hand) starts them again
        raise BackupError("; ".join(problems))
    _unlink_quiet(state_path)
    fsync_dir(state_dir)
    return state


# --------------------------------------------------------------------------- status for monitoring


def write_status(
    status_path: str,
    *,
    ok: bool,
    result: BackupResult | None = None,
    error: str | None = None,
    rpo_seconds: int | None = None,
    textfile_path: str | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Record the last attempt (and keep the last success) where monitoring can read it."""
    moment = now or utcnow()
    previous: dict[str, Any] = {}
    try:
        with open(status_path, "rb") as handle:
            previous = json.loads(handle.read())
    except (OSError, ValueError):
        previous = {}
    status = dict(previous)
    status.update(
        {
            "last_attempt": iso(moment),
            "last_attempt_epoch": calendar.timegm(moment.utctimetuple()),
            "last_result": "ok" if ok and not (result and result.upload_error) else "failed",
            "error": error or (result.upload_error if result else None),
            "rpo_seconds": rpo_seconds,
        }
    )
    if ok and result is not None:
        status.update(
            {
                "last_success": iso(moment),
                "last_success_epoch": calendar.timegm(moment.utctimetuple()),
                "name": result.manifest["name"],
                "size_bytes": result.manifest["file_size"],
                "db_size_bytes": result.manifest["db_size"],
                "location": result.path,
                "s3_uri": result.s3_uri if result.uploaded else None,
            }
        )
        if result.uploaded:
            status["last_upload_success_epoch"] = status["last_success_epoch"]
    os.makedirs(os.path.dirname(os.path.abspath(status_path)), exist_ok=True)
    atomic_write_bytes(status_path, json.dumps(status, indent=2, sort_keys=True).encode() + b"\n", mode=0o644)
    if textfile_path:
        atomic_write_bytes(textfile_path, prometheus_text(status).encode(), mode=0o644)
    return status


def prometheus_text(status: dict[str, Any]) -> str:
    metrics = [
        (
            "tengen_backup_last_success_timestamp_seconds",
            "Time of the last verified backup.",
            "last_success_epoch",
        ),
        (
            "tengen_backup_last_attempt_timestamp_seconds",
            "Time of the last backup attempt.",
            "last_attempt_epoch",
        ),
        (
            "tengen_backup_last_upload_timestamp_seconds",
            "Time of the last offsite upload.",
            "last_upload_success_epoch",
        ),
        ("tengen_backup_last_size_bytes", "Size of the last backup file.", "size_bytes"),
        ("tengen_backup_rpo_seconds", "Allowed age of the newest backup.", "rpo_seconds"),
    ]
    lines: list[str] = []
    for metric, help_text, key in metrics:
        if status.get(key) is not None:
            lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} gauge", f"{metric} {status[key]}"]
    ok = 1 if status.get("last_result") == "ok" else 0
    lines += [
        "# HELP tengen_backup_last_run_ok 1 when the last attempt made and uploaded a verified backup.",
        "# TYPE tengen_backup_last_run_ok gauge",
        f"tengen_backup_last_run_ok {ok}",
    ]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- command line (the VM's timer)


def _env_config(env: dict[str, str]) -> dict[str, Any]:
    def num(name: str, default: int) -> int:
        return int(env.get(name) or default)

    s3 = None
    if env.get("TENGEN_BACKUP_S3_BUCKET"):
        s3 = S3Target(
            bucket=env["TENGEN_BACKUP_S3_BUCKET"],
            prefix=env.get("TENGEN_BACKUP_S3_PREFIX", ""),
            endpoint_url=env.get("TENGEN_BACKUP_S3_ENDPOINT_URL") or None,
            region=env.get("TENGEN_BACKUP_S3_REGION") or None,
            access_key=env.get("AWS_ACCESS_KEY_ID") or None,
            secret_key=env.get("AWS_SECRET_ACCESS_KEY") or None,
            session_token=env.get("AWS_SESSION_TOKEN") or None,
            sse=env.get("TENGEN_BACKUP_S3_SSE") or None,
            sse_kms_key_id=env.get("TENGEN_BACKUP_S3_SSE_KMS_KEY_ID") or None,
        )
    return {
        "db_path": env.get("TENGEN_BACKUP_DB", "/var/lib/tengen/tengen.db"),
        "backup_dir": env.get("TENGEN_BACKUP_DIR", "/var/backups/tengen"),
        "prefix": env.get("TENGEN_BACKUP_NAME") or None,
        "compression": env.get("TENGEN_BACKUP_COMPRESSION") or "zstd",
        # the keyring, newest first, space-separated; the single-key variable still works
        "key": (env.get("TENGEN_BACKUP_ENCRYPTION_KEYS") or "").split()
        or env.get("TENGEN_BACKUP_ENCRYPTION_KEY")
        or None,
        "s3": s3,
        "retention": Retention(
            last=num("TENGEN_BACKUP_KEEP_LAST", 4),
            hourly=num("TENGEN_BACKUP_KEEP_HOURLY", 24),
            daily=num("TENGEN_BACKUP_KEEP_DAILY", 7),
            weekly=num("TENGEN_BACKUP_KEEP_WEEKLY", 4),
            monthly=num("TENGEN_BACKUP_KEEP_MONTHLY", 6),
        ),
        "status_file": env.get("TENGEN_BACKUP_STATUS_FILE", "/var/lib/tengen-backup/status.json"),
        "textfile": env.get("TENGEN_BACKUP_TEXTFILE") or None,
        "rpo_seconds": num("TENGEN_BACKUP_RPO_SECONDS", 3600),
        "max_local": num("TENGEN_BACKUP_KEEP_LOCAL_MAX", 0) or None,
        "min_free_mb": num("TENGEN_BACKUP_MIN_FREE_MB", 0),
        "allow_plaintext_offsite": env.get("TENGEN_BACKUP_ALLOW_PLAINTEXT_OFFSITE", "").lower()
        in ("1", "true", "yes"),
    }


def _cli_restore_swap(args: Any, config: dict[str, Any], state_dir: str) -> int:
    """Run a restore's swap and record its outcome where the controller (if still there) reads it."""
    result_path = os.path.join(state_dir, RESTORE_RESULT)
    _unlink_quiet(result_path)
    try:
        backend = BackendControl(args.backend, args.compose_dir, args.service, args.unit)
        swapped = restore_on_vm(
            args.staged,
            config["db_path"],
            backup_dir=config["backup_dir"],
            state_dir=state_dir,
            keep_suffix=args.keep_suffix,
            backend=backend,
            timer=args.timer or None,
            keep_replaced=args.keep_replaced,
            lock_wait=args.lock_wait,
        )
        outcome: dict[str, Any] = {"ok": True, **swapped}
    except (BackupError, sqlite3.Error, OSError) as exc:
        outcome = {"ok": False, "error": str(exc)}
    os.makedirs(state_dir, exist_ok=True)
    atomic_write_bytes(result_path, json.dumps(outcome, indent=2).encode() + b"\n", mode=0o644)
    if not outcome["ok"]:
        print(
            f"tengen-backup: restore FAILED, the backend runs the old database: {outcome['error']}",
            file=sys.stderr,
        )
        return 1
    print(f"tengen-backup: restored into {config['db_path']}; the replaced database is {swapped['kept'][:1]}")
    return 0


def cli_main(argv: list[str] | None = None, env: dict[str, str] | None = None) -> int:
    """``tengen-backup backup|list|status|verify [NAME]|restore-swap|restore-recover``, configured by
    TENGEN_BACKUP_* variables."""
    import argparse

    parser = argparse.ArgumentParser(prog="tengen-backup", description=cli_main.__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("backup", help="make, verify, upload and prune (what the timer runs)")
    sub.add_parser("list", help="list complete local backups")
    sub.add_parser("status", help="print the status file with the current age of the last success")
    verify = sub.add_parser("verify", help="fully verify a local backup (default: the latest)")
    verify.add_argument("name", nargs="?", default="latest")
    swap = sub.add_parser(
        "restore-swap", help="stop the backend, swap a staged database in, start it (one process)"
    )
    swap.add_argument("--staged", required=True)
    swap.add_argument("--keep-suffix", required=True)
    swap.add_argument("--backend", choices=["compose", "systemd", "none"], default="none")
    swap.add_argument("--compose-dir")
    swap.add_argument("--service", action="append", default=[])
    swap.add_argument("--unit")
    swap.add_argument("--timer", default="tengen-backup.timer")
    swap.add_argument("--keep-replaced", type=int, default=2)
    swap.add_argument("--lock-wait", type=float, default=600.0)
    sub.add_parser("restore-recover", help="start what a stopped restore left stopped (no-op when none)")
    args = parser.parse_args(argv)
    if not LOG.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("tengen-backup: %(message)s"))
        LOG.addHandler(handler)
    try:
        config = _env_config(dict(os.environ if env is None else env))
    except (ValueError, BackupError) as exc:
        print(f"tengen-backup: bad configuration: {exc}", file=sys.stderr)
        return 2

    state_dir = os.path.dirname(os.path.abspath(config["status_file"]))
    if args.command == "restore-swap":
        return _cli_restore_swap(args, config, state_dir)
    if args.command == "restore-recover":
        try:
            state = restore_recover(state_dir)
        except BackupError as exc:
            print(f"tengen-backup: recovery after a stopped restore FAILED: {exc}", file=sys.stderr)
            return 1
        if state is not None:
            print(
                f"tengen-backup: the restore started {state.get('started')} stopped half-way; "
                "the backend and the timer run again"
            )
        return 0

    if args.command == "backup":
        try:
            result = create_backup(
                config["db_path"],
                config["backup_dir"],
                prefix=config["prefix"],
                compression=config["compression"],
                key=config["key"],
                s3=config["s3"],
                retention=config["retention"],
                allow_plaintext_offsite=config["allow_plaintext_offsite"],
                max_local=config["max_local"],
                min_free_mb=config["min_free_mb"],
            )
        except BackupError as exc:
            write_status(
                config["status_file"],
                ok=False,
                error=str(exc),
                rpo_seconds=config["rpo_seconds"],
                textfile_path=config["textfile"],
            )
            print(f"tengen-backup: backup FAILED: {exc}", file=sys.stderr)
            return 1
        write_status(
            config["status_file"],
            ok=True,
            result=result,
            rpo_seconds=config["rpo_seconds"],
            textfile_path=config["textfile"],
        )
        print(
            f"tengen-backup: {result.manifest['name']} verified, "
            f"{result.manifest['file_size']} bytes at {result.path}"
        )
        if result.pruned_local or result.pruned_s3:
            print(f"tengen-backup: pruned local {result.pruned_local}, bucket {result.pruned_s3}")
        if result.upload_error:
            print(
                f"tengen-backup: offsite copy FAILED (local copy kept): {result.upload_error}",
                file=sys.stderr,
            )
            return 3
        if result.uploaded:
            print(f"tengen-backup: uploaded to {result.s3_uri}")
        return 0
    if args.command == "list":
        for backup in list_local(config["backup_dir"]):
            m = backup.manifest
            print(f"{m['name']}\t{m['created']}\t{m['file_size']}\t{m['integrity_check']}\t{m['file']}")
        return 0
    if args.command == "status":
        try:
            with open(config["status_file"], "rb") as handle:
                status = json.loads(handle.read())
        except (OSError, ValueError) as exc:
            print(f"tengen-backup: no status yet: {exc}", file=sys.stderr)
            return 1
        if status.get("last_success_epoch"):
            status["age_seconds"] = int(time.time()) - status["last_success_epoch"]
        print(json.dumps(status, indent=2, sort_keys=True))
        stale = status.get("age_seconds") is None or status["age_seconds"] > (status.get("rpo_seconds") or 0)
        return 1 if stale else 0
    if args.command == "verify":
        backup = find_backup(list_local(config["backup_dir"]), args.name)
        scratch = tempfile.mkdtemp(prefix=TMP_PREFIX, dir=config["backup_dir"])
        try:
            unpack_backup(
                os.path.join(config["backup_dir"], backup.file),
                backup.manifest,
                os.path.join(scratch, "verify.db"),
                config["key"],
            )
        except BackupError as exc:
            print(f"tengen-backup: {backup.name} FAILED verification: {exc}", file=sys.stderr)
            return 1
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        print(f"tengen-backup: {backup.name} verified (checksum, decryption, decompression, integrity)")
        return 0
    return 2  # pragma: no cover - argparse rejects other commands
