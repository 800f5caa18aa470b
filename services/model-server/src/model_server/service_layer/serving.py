"""The models this process serves: the deployed set read from the projection, loaded and
unloaded to match it (`ModelPool.reconcile`), and looked up per request.

A model leaves the served set the moment an event says so (a call then gets 404
`model_not_deployed`); a newly deployed one is looked up as soon as it is known and answers 503
`model_loading` until its files are loaded (seconds for the models here).
"""

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from uuid import UUID

import structlog

from model_server.domain.deployments import Deployment, Kind, callable_model, serving_set
from model_server.domain.errors import ModelLoading
from model_server.service_layer.batching import MicroBatcher
from model_server.service_layer.engines import (
    Classified,
    Classifier,
    Embedded,
    Embedder,
    LoraBackend,
)

log = structlog.get_logger(__name__)


class Loaders(Protocol):
    """How the pool finds and loads a model's files (blocking calls, run in a thread)."""

    lora: LoraBackend

    def locate(self, deployment: Deployment) -> Path: ...

    def embedder(self, path: Path) -> Embedder: ...

    def classifier(self, path: Path) -> Classifier: ...


@dataclass(frozen=True)
class Loaded:
    """A loaded model; an embedding or classification model is called through its batcher
    (concurrent requests share a forward pass)."""

    deployment: Deployment
    embedder: MicroBatcher[Embedded] | None = None
    classifier: MicroBatcher[Classified] | None = None

    @property
    def adapter(self) -> str:
        """The LoRA backend's name for it: the model's name."""
        return self.deployment.name


class ModelPool:
    def __init__(self, loaders: Loaders, *, max_batch_texts: int = 64) -> None:
        self.loaders = loaders
        self._max_batch_texts = max_batch_texts
        self._serving: dict[tuple[str, str], Deployment] = {}
        self._loaded: dict[UUID, Loaded] = {}
        self._failed: dict[UUID, str] = {}
        self._lock = asyncio.Lock()

    def deployed_for(self, user_id: str) -> list[Deployment]:
        return sorted(
            (d for (owner, _), d in self._serving.items() if owner == user_id),
            key=lambda d: d.name,
        )

    def is_loaded(self, model_id: UUID) -> bool:
        return model_id in self._loaded

    def get(self, *, caller: str, name: str, kind: Kind) -> Loaded:
        deployment = callable_model(self._serving, caller=caller, name=name, kind=kind)
        loaded = self._loaded.get(deployment.model_id)
        if loaded is None:
            raise ModelLoading(name, self._failed.get(deployment.model_id))
        return loaded

    async def reconcile(self, rows: list[Deployment]) -> None:
        """Serve exactly the live rows: unload what left, load what came."""
        async with self._lock:
            wanted = serving_set(rows)
            self._serving = wanted
            keep = {d.model_id for d in wanted.values()}
            for model_id in [m for m in self._loaded if m not in keep]:
                await self._unload(self._loaded.pop(model_id))
            self._failed = {m: why for m, why in self._failed.items() if m in keep}
            for deployment in wanted.values():
                if deployment.model_id not in self._loaded:
                    await self._load(deployment)

    async def _load(self, deployment: Deployment) -> None:
        started = asyncio.get_running_loop().time()
        try:
            path = await asyncio.to_thread(self.loaders.locate, deployment)
            if deployment.kind is Kind.EMBEDDING:
                embedder = await asyncio.to_thread(self.loaders.embedder, path)
                batched = MicroBatcher(
                    embedder.embed, max_texts=self._max_batch_texts, name=deployment.name
                )
                loaded = Loaded(deployment, embedder=batched)
            elif deployment.kind is Kind.CLASSIFIER:
                classifier = await asyncio.to_thread(self.loaders.classifier, path)
                loaded = Loaded(
                    deployment,
                    classifier=MicroBatcher(
                        classifier.classify, max_texts=self._max_batch_texts, name=deployment.name
                    ),
                )
            else:
                loaded = Loaded(deployment)
                await self.loaders.lora.add_adapter(loaded.adapter, path)
        except Exception as exc:
            self._failed[deployment.model_id] = str(exc)[:500] or type(exc).__name__
            log.warning(
                "model.load_failed",
                model_id=str(deployment.model_id),
                name=deployment.name,
                error=repr(exc)[:500],
            )
            return
        self._failed.pop(deployment.model_id, None)
        self._loaded[deployment.model_id] = loaded
        log.info(
            "model.loaded",
            model_id=str(deployment.model_id),
            name=deployment.name,
            kind=deployment.kind.value,
            seconds=round(asyncio.get_running_loop().time() - started, 2),
        )

    async def _unload(self, loaded: Loaded) -> None:
        # An embedding or classification model's batcher finishes what it holds, then stops.
        deployment = loaded.deployment
        if deployment.kind is Kind.LORA:
            try:
                await self.loaders.lora.remove_adapter(loaded.adapter)
            except Exception as exc:
                log.warning("model.unload_failed", name=deployment.name, error=repr(exc)[:300])
        log.info("model.unloaded", model_id=str(deployment.model_id), name=deployment.name)

    async def close(self) -> None:
        async with self._lock:
            for loaded in self._loaded.values():
                await self._unload(loaded)
                for batcher in (loaded.embedder, loaded.classifier):
                    if batcher is not None:
                        await batcher.close()
            self._loaded.clear()
            self._serving = {}
        await self.loaders.lora.close()


class Reconciler:
    """Keeps the pool in step with the projection: at once when poked (after an event's
    transaction committed), and every `interval` seconds regardless (another replica may have
    written what this one's queue did not bring, e.g. while it was starting)."""

    def __init__(
        self,
        pool: ModelPool,
        read: Callable[[], Awaitable[list[Deployment]]],
        *,
        interval: float,
    ) -> None:
        self._pool = pool
        self._read = read
        self._interval = interval
        self._wake = asyncio.Event()
        self.rounds = 0

    def poke(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            await self._pool.reconcile(await self._read())
            self.rounds += 1
            try:
                async with asyncio.timeout(self._interval):
                    await self._wake.wait()
            except TimeoutError:
                pass
