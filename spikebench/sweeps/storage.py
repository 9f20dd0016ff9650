"""Where a study lives: a journal file on one machine, or a database that workers on many machines share.

A database storage survives its server going away for a while (a restart, a failover, a network cut): every
call waits and retries until the server answers again, for up to `sweep.reconnect_timeout` seconds, so that a
running trial just pauses at its next report and then carries on. Past that time the worker stops with one
line; the trial it was running is failed by the heartbeat check of any worker (or of this command, rerun) and
queued again with its parameters.

Passwords: a URL's password is moved into libpq's PGPASSWORD for this process and its children and cut out of
the URL (`split_password`), so that nothing this suite prints or stores carries it; `mask_password` masks any
that remains in a text to be printed or stored. Better still, keep it off the command line: PGPASSWORD or
~/.pgpass.
"""

from __future__ import annotations

import functools
import os
import re
import sys
import threading
import time
import warnings
from pathlib import Path

import optuna
from omegaconf import DictConfig

from spikebench.configs import ConfigError

_PASSWORD = re.compile(r"([A-Za-z][\w+.-]*://[^:/@\s]*):([^@\s]+)@")


def mask_password(text: str) -> str:
    """`text` with the password of every URL in it (scheme://user:password@host) replaced by ***: for whatever is
    printed or stored (commands, environment records). Keep passwords out of the command line altogether with
    libpq's PGPASSWORD or ~/.pgpass."""
    return _PASSWORD.sub(r"\1:***@", text)


def split_password(url: str | None) -> str | None:
    """A PostgreSQL URL without its password, which goes to PGPASSWORD (read by libpq, inherited by child
    processes) instead; other URLs and URLs without a password are returned as they are."""
    if not url or not re.match(r"postgres(ql)?(\+\w+)?://", url):
        return url
    m = _PASSWORD.search(url)
    if not m:
        return url
    from urllib.parse import unquote

    os.environ["PGPASSWORD"] = unquote(m.group(2))
    return url[: m.start()] + m.group(1) + "@" + url[m.end() :]


def database_url(url: str) -> str:
    """The URL with an installed driver: plain postgresql:// means psycopg (3) to SQLAlchemy 2.1, and
    psycopg2 (the `postgres` extra) to older versions; use whichever is installed."""
    import importlib.util

    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg") is None:
        if importlib.util.find_spec("psycopg2") is not None:
            return "postgresql+psycopg2://" + url[len("postgresql://") :]
    return url


class StorageLost(Exception):
    """The database did not answer for longer than `sweep.reconnect_timeout` seconds. Not a trial's fault: not
    one of the errors that fail a trial and let the study go on."""


def connection_lost(err: BaseException) -> BaseException | None:
    """The exception in `err`'s chain (itself or one it was raised from) that says the connection to the database
    is gone, or None: an error in the data, which no retry can fix."""
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

    seen: set[int] = set()
    e: BaseException | None = err
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, (OperationalError, InterfaceError)) or (isinstance(e, DBAPIError) and e.connection_invalidated):
            return getattr(e, "orig", None) or e
        e = e.__cause__ or e.__context__
    return None


class ReconnectingRDBStorage(optuna.storages.RDBStorage):
    """RDBStorage whose every database call waits for the server while the connection is lost (see the module
    docstring). SQLAlchemy's pool_pre_ping replaces the pool's dead connections once the server is back."""

    reconnect_timeout: float = 600.0
    lost: str | None = None
    _down_since: float | None = None
    _lock = threading.Lock()

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            self._record_heartbeat_patiently(trial_id)
        except StorageLost:
            pass  # the heartbeat thread ends quietly; the trial's own next call reports the loss

    def _waited(self, err: BaseException, t0: float) -> None:
        """Called after a failed call: note the outage once, give up past the timeout, else sleep a little."""
        now = time.monotonic()
        with self._lock:
            if self._down_since is None:
                self._down_since = now
                first = (str(err).strip() or type(err).__name__).splitlines()[0]
                print(f"storage: connection lost ({first[:200]}); retrying for up to {self.reconnect_timeout:g} s",
                      file=sys.stderr, flush=True)
        if now - t0 > self.reconnect_timeout:
            self.lost = (f"the study's database did not answer for {self.reconnect_timeout:g} s "
                         "(sweep.reconnect_timeout); rerun the same command to continue the study")
            raise StorageLost(self.lost) from None
        time.sleep(min(5.0, 0.5 + 0.25 * (now - t0)))

    def _answered(self) -> None:
        with self._lock:
            if self._down_since is not None:
                print(f"storage: reconnected after {time.monotonic() - self._down_since:.1f} s", file=sys.stderr, flush=True)
                self._down_since = None


def _patient(method):
    @functools.wraps(method)
    def call(self: ReconnectingRDBStorage, *args, **kwargs):
        t0 = time.monotonic()
        while True:
            if self.lost:
                raise StorageLost(self.lost)
            try:
                out = method(self, *args, **kwargs)
            except Exception as err:
                cause = connection_lost(err)
                if cause is None:
                    raise
                self._waited(cause, t0)
                continue
            if self._down_since is not None:
                self._answered()
            return out

    return call


_RDB = optuna.storages.RDBStorage
for _name in [n for n, v in vars(_RDB).items() if callable(v) and not n.startswith("_")] + ["_get_stale_trial_ids"]:
    if _name != "record_heartbeat":
        setattr(ReconnectingRDBStorage, _name, _patient(getattr(_RDB, _name)))
ReconnectingRDBStorage._record_heartbeat_patiently = _patient(_RDB.record_heartbeat)


def make_storage(scfg: DictConfig, out_dir: Path) -> tuple[optuna.storages.BaseStorage, str]:
    """(storage, what to pass to optuna-dashboard): a journal file, or a database URL with heartbeats."""
    target = str(scfg.storage) if scfg.storage else str(out_dir / "journal.log")
    if "://" in target:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

        target = database_url(split_password(target))
        shown = mask_password(make_url(target).render_as_string(hide_password=True))
        for attempt in range(3):  # workers that start together race to create the tables: the loser retries
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    storage = ReconnectingRDBStorage(
                        target,
                        engine_kwargs={"pool_pre_ping": True},
                        heartbeat_interval=int(scfg.heartbeat_interval),
                        grace_period=int(scfg.grace_period),
                        heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(scfg.max_retry),
                    )
                storage.reconnect_timeout = float(scfg.reconnect_timeout)
                break
            except (IntegrityError, ProgrammingError):
                if attempt == 2:
                    raise
                time.sleep(1.0 + attempt)
            except OperationalError as err:
                first = str(err.orig or err).strip().splitlines()[0]
                raise ConfigError(f"sweep.storage={shown}: cannot connect ({first}); check host, port, database "
                                  "and credentials, or leave sweep.storage unset for a journal file") from None
        return storage, shown
    path = Path(target).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    from optuna.storages.journal import JournalFileBackend

    try:
        return optuna.storages.JournalStorage(JournalFileBackend(str(path))), str(path)
    except ValueError as err:  # json.JSONDecodeError: a line of the journal file is broken
        raise corrupt_journal(path, err) from None


def corrupt_journal(path: Path | str, err: Exception) -> ConfigError:
    return ConfigError(f"{path}: the study journal is corrupt ({err}); a worker killed mid-write leaves a broken "
                       "last line: remove that line, or start a new study (sweep.out_dir)")
