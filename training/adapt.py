"""Domain-adaptive pre-training: continue a pretrained encoder's masked-language-model training
on a district's own unlabelled messages before fine-tuning it (Gururangan et al., 2020, "Don't
stop pretraining", arXiv:2004.10964).

The encoder reads the same prepared text as the fine-tuned classifier
(:func:`wangge.models.transformer.transformer_text` of the classifier's content tokens), and
is cut to the same number of layers first, so the adapted layers are the ones fine-tuning
keeps; the embeddings stay frozen, as in fine-tuning.

Predicting every masked word over e5's whole 250k-piece vocabulary took 8 s per step of 16
texts on 2 cores (the output layer alone is 96M multiply-adds per position), so while training
the prediction layer is cut to the pieces that occur in the messages (an exact softmax over
that vocabulary: 1.1 s per step), and put back whole before saving. The output is an ordinary
Hugging Face directory for ``wangge train --backend transformer --base-model``. Checkpoints
are written each epoch; rerunning the same command resumes from the last one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from wangge.errors import TrainingError
from wangge.training.config import AdaptConfig
from wangge.training.finetune import (
    freeze_lower,
    require_checkpoint,
    trainer_with_loss,
    truncate_layers,
)

logger = logging.getLogger(__name__)


def adapt_encoder(
    texts: Sequence[str],
    output: str | Path,
    config: AdaptConfig,
    *,
    progress: Callable[[str], None] = logger.info,
) -> float:
    """Continue masked-language-model training of ``config.base_model`` on ``texts`` (already
    prepared) and save the encoder with its tokenizer in ``output``; returns the seconds
    taken. Checkpoints go to ``output/checkpoints`` and are removed after success."""
    import shutil

    import torch
    from datasets import Dataset
    from transformers import (
        AutoModelForMaskedLM,
        AutoTokenizer,
        DataCollatorForLanguageModeling,
        set_seed,
    )
    from transformers.trainer_utils import get_last_checkpoint

    started = time.perf_counter()
    base, output = config.base(), Path(output)
    require_checkpoint(base)
    texts = [text for text in texts if text.strip()]
    if not texts:
        raise TrainingError("no text to adapt on: every message is empty after preparation")
    set_seed(config.seed)
    tokenizer = AutoTokenizer.from_pretrained(str(base), local_files_only=True)
    model = AutoModelForMaskedLM.from_pretrained(str(base), local_files_only=True)
    if config.layers:
        truncate_layers(model, config.layers)
    # The embeddings (for e5-small 96M of its 118M weights, tied to the prediction head) stay
    # as they are, as in fine-tuning: the encoder layers adapt, in a fraction of the time.
    freeze_lower(model, 0)
    encoded = tokenizer(texts, truncation=True, max_length=config.max_length)
    dataset = Dataset.from_dict(dict(encoded))
    progress(
        f"adapting {base.name} ({len(model.base_model.encoder.layer)} layers) on "
        f"{len(texts)} messages, {config.epochs:g} epochs"
    )
    vocabulary = sorted({piece for ids in encoded["input_ids"] for piece in ids})
    progress(f"predicting over the {len(vocabulary)} sub-words the messages use")
    full_head = model.get_output_embeddings()
    model.set_output_embeddings(_head_over(full_head, vocabulary))
    checkpoints = output / "checkpoints"
    trainer = trainer_with_loss(_cut_vocabulary_loss(vocabulary, full_head.out_features))(
        model=model,
        args=_training_arguments(config, checkpoints, len(dataset)),
        train_dataset=dataset,
        processing_class=tokenizer,
        data_collator=DataCollatorForLanguageModeling(
            tokenizer, mlm_probability=config.mask_share, seed=config.seed
        ),
    )
    last = get_last_checkpoint(str(checkpoints)) if checkpoints.is_dir() else None
    if last:
        progress(f"resuming from {last}")
    trainer.train(resume_from_checkpoint=last)
    small_head = model.get_output_embeddings()
    if full_head.bias is not None:
        with torch.no_grad():
            full_head.bias[torch.tensor(vocabulary)] = small_head.bias
    model.set_output_embeddings(full_head)
    model.tie_weights()
    trainer.save_model(str(output))
    tokenizer.save_pretrained(str(output))
    shutil.rmtree(checkpoints, ignore_errors=True)
    return time.perf_counter() - started


def _training_arguments(config: AdaptConfig, checkpoints: Path, rows: int) -> Any:
    """transformers' arguments: a checkpoint each epoch, only the last one kept."""
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(checkpoints),
        num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        warmup_steps=max(1, rows // config.batch_size // 10),
        weight_decay=0.01,
        save_strategy="epoch",
        save_total_limit=1,
        logging_steps=50,
        train_sampling_strategy="group_by_length",
        seed=config.seed,
        data_seed=config.seed,
        report_to=[],
        dataloader_num_workers=0,
    )


def _cut_vocabulary_loss(vocabulary: list[int], pieces: int) -> Callable[[Any, Any], Any]:
    """Cross-entropy at the masked positions, their pieces' ids (of ``pieces``) turned into
    positions in ``vocabulary`` (the cut output layer's rows)."""
    import torch

    position = torch.full((pieces,), -100, dtype=torch.long)
    position[torch.tensor(vocabulary)] = torch.arange(len(vocabulary))

    def loss(logits: Any, labels: Any) -> Any:
        where = position.to(labels.device)
        target = torch.where(labels == -100, labels, where[labels.clamp(min=0)])
        return torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=-100
        )

    return loss


def _head_over(head: Any, vocabulary: list[int]) -> Any:
    """A copy of the output layer ``head`` that predicts only the pieces ``vocabulary``; its
    weights (the input embeddings', frozen) are not trained, its bias is."""
    import torch

    rows = torch.tensor(vocabulary)
    small = torch.nn.Linear(head.in_features, len(vocabulary), bias=head.bias is not None)
    small.weight = torch.nn.Parameter(head.weight[rows].detach().clone(), requires_grad=False)
    if head.bias is not None:
        small.bias = torch.nn.Parameter(head.bias[rows].detach().clone())
    return small
