"""Which model serves: loaded once at cold start, hot-swapped when production moves.

``MODEL_BUNDLE_URI`` names a bundle (served as is) or a model store / its
``production.json`` (followed: re-checked at most every ``refresh_seconds``; a newly
promoted bundle is fetched, verified, smoke-tested and swapped in without a redeploy). A
failed refresh, a bundle that fails its smoke test included, keeps the current model and
is logged; it never stops serving. At cold start the same failure is a BundleError.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lambda_service.bundle import (
    DEFAULT_MAX_BUNDLE_BYTES,
    PRODUCTION_POINTER,
    BundleError,
    prune_cache,
    resolve_bundle_uri,
    resolve_production,
)
from lambda_service.event_record import CONSUMER_SWAPPED, event_line
from lambda_service.predictor import Predictor

log = logging.getLogger("studperf.model")


class ModelProvider:
    def __init__(
        self,
        uri: str,
        cache_dir: Path,
        refresh_seconds: float = 60.0,
        s3: Any = None,
        clock: Callable[[], float] = time.monotonic,
        max_bytes: int = DEFAULT_MAX_BUNDLE_BYTES,
    ) -> None:
        self.uri = uri
        self.max_bytes = max_bytes
        self.cache_dir = cache_dir
        self.refresh_seconds = refresh_seconds
        self.s3 = s3
        self.clock = clock
        try:
            bundle_uri, pointer_version = resolve_bundle_uri(uri, s3)
            self.follows_pointer = pointer_version is not None
            self._store_root = uri.rstrip("/").removesuffix(PRODUCTION_POINTER).rstrip("/")
            self._predictor = Predictor.from_uri(bundle_uri, cache_dir, s3, max_bytes)
        except BundleError:
            raise
        except Exception as exc:
            raise BundleError(f"{uri}: cannot load the model ({exc})") from exc
        self._checked_at = clock()
        self._refreshing = threading.Lock()
        log.info("serving %s from %s", self._predictor.version, bundle_uri)

    @property
    def predictor(self) -> Predictor:
        """The model to use now; follows the production pointer when due."""
        if self.follows_pointer and self.clock() - self._checked_at >= self.refresh_seconds:
            self.refresh()
        return self._predictor

    def refresh(self) -> bool:
        """Re-read the pointer; swap to a new version. True if the model changed.

        One refresh at a time (``studperf serve`` answers from a thread pool): a request
        that finds one under way goes on with the current model instead of waiting."""
        if not self._refreshing.acquire(blocking=False):
            return False
        try:
            return self._refresh()
        finally:
            self._refreshing.release()

    def _refresh(self) -> bool:
        self._checked_at = self.clock()
        try:
            # the pointer only: one small read per refresh, not a probe for a manifest first
            version, bundle_uri = resolve_production(self._store_root, self.s3)
            if version == self._predictor.version:
                return False
            replacement = Predictor.from_uri(bundle_uri, self.cache_dir, self.s3, self.max_bytes)
        except Exception as exc:  # noqa: BLE001 - keep serving the current model
            log.error(
                "model refresh from %s failed, keeping %s: %s",
                self.uri,
                self._predictor.version,
                exc,
            )
            prune_cache(self.cache_dir, keep={self._predictor.version})
            return False
        # a structured record (``event_record``): ``studperf up`` reads its fields
        log.info(
            event_line(
                CONSUMER_SWAPPED,
                from_version=self._predictor.version,
                to_version=replacement.version,
            )
        )
        self._predictor = replacement
        # the old model stays in memory until here; on disk only the one serving is kept
        prune_cache(self.cache_dir, keep={replacement.version})
        return True
