"""The loaders the model pool uses (service_layer.serving.Loaders), from the settings."""

from pathlib import Path

from model_server.adapters.engines import (
    SentenceTransformerEngine,
    SequenceClassifierEngine,
    set_torch_threads,
)
from model_server.adapters.lora_peft import PeftLora
from model_server.adapters.lora_vllm import VllmLora
from model_server.adapters.store import locate
from model_server.config import Settings
from model_server.domain.deployments import Deployment
from model_server.service_layer.engines import Classifier, Embedder, LoraBackend


class LocalLoaders:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.lora: LoraBackend
        if settings.lora_backend == "vllm":
            key = settings.vllm_api_key.get_secret_value() if settings.vllm_api_key else None
            self.lora = VllmLora(settings.vllm_url, api_key=key)
        else:
            self.lora = PeftLora(device=settings.device, max_new_tokens=settings.max_new_tokens)

    def locate(self, deployment: Deployment) -> Path:
        s = self._settings
        return locate(
            user_id=deployment.user_id,
            name=deployment.name,
            revision=deployment.revision,
            store_dir=s.model_store_dir,
            hub_downloads=s.hub_downloads,
            hf_token=s.hf_token.get_secret_value() if s.hf_token else None,
        )

    def embedder(self, path: Path) -> Embedder:
        set_torch_threads(self._settings.torch_threads)
        return SentenceTransformerEngine(path, device=self._settings.device)

    def classifier(self, path: Path) -> Classifier:
        set_torch_threads(self._settings.torch_threads)
        return SequenceClassifierEngine(path, device=self._settings.device)
