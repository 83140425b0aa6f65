"""What a fine-tuning run is: FinetuneConfig (the flags of `python -m wanda_core finetune` are derived from
its fields) and the constants behind its defaults."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


from wanda_core.models import data



HOWS = ("lora", "masked")
LORA_LR = 1e-4  # the official lora_ft's learning rate
FINETUNE_RECORD_VERSION = 1
BOOTSTRAP = 2000  # bootstrap resamples of the evaluation windows for the paired interval


@dataclass
class FinetuneConfig:
    from_record: str = field(default="", metadata={"flag": "--from"})  # run record (.json) saved with --save-weights, or a directory from prune --save-model
    how: str = field(default="lora", metadata={"choices": HOWS})  # lora (peft adapters, base kept sparse) or masked (dense training, pruned weights held at zero)
    steps: int = 50                   # optimizer steps (one batch each); must be >= 1
    lr: float | None = None           # peak learning rate; none = 1e-4 (the official LoRA setting) for lora, 2e-5 for masked
    batch_size: int = 4               # training windows per step
    seqlen: int = 128                 # tokens per training window
    warmup_steps: int = 5             # linear warm-up, then linear decay to zero (the official lora_ft's 5 warm-up steps)
    train_text: str = "wiki"          # training text: wiki (its calibration pool, minus the calibration windows) or a .txt/.jsonl file
    eval: tuple[str, ...] = ("wiki",) # perplexity datasets, on the source record's window length and count
    eval_at: tuple[int, ...] = ()     # steps at which to measure perplexity too (the curve); before and after always
    lora_r: int = 8                   # LoRA rank (the official 8)
    lora_alpha: int = 16              # LoRA scaling numerator (the official 16)
    lora_dropout: float = 0.05        # dropout on the adapter's input (the official 0.05)
    lora_targets: tuple[str, ...] = ("q_proj", "v_proj")  # Linear names in a block that get adapters (the official q_proj v_proj)
    max_grad_norm: float = 1.0        # gradient clipping (the Hugging Face Trainer's default 1.0)
    seed: int = 0                     # order of the training windows, adapter initialisation, dropout
    checkpoint_every: int = 25        # write a resumable checkpoint every N steps; 0 = never
    save_weights: bool = False        # keep the trained weights (LoRA: the adapter is always kept)
    device: str | None = None         # none = the source record's device

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else (LORA_LR if self.how == "lora" else 2e-5)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def identity(self) -> dict[str, Any]:
        """The fields that decide the trained model and its evaluation (their hash names the run)."""
        f = {k: v for k, v in self.to_dict().items()
             if k not in ("from_record", "checkpoint_every", "save_weights", "device", "lr")}
        f["lr"] = self.learning_rate
        if self.how != "lora":
            for k in ("lora_r", "lora_alpha", "lora_dropout", "lora_targets"):
                f.pop(k)
        return f

    def validate(self) -> "FinetuneConfig":
        self.eval = tuple([self.eval] if isinstance(self.eval, str) else self.eval)
        self.eval_at = tuple(self.eval_at)
        self.lora_targets = tuple([self.lora_targets] if isinstance(self.lora_targets, str) else self.lora_targets)
        if self.how not in HOWS:
            raise ValueError(f"unknown how {self.how!r}; valid: {', '.join(HOWS)}")
        if not self.from_record:
            raise ValueError("give the pruned model to start from: --from RECORD.json (pruned with --save-weights) "
                             "or --from DIR (written by prune --save-model)")
        for name in ("steps", "batch_size", "lora_r"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a whole number >= 1, got {v!r}")
        if self.seqlen < 2:
            raise ValueError(f"seqlen must be >= 2 tokens, got {self.seqlen}")
        for name in ("warmup_steps", "checkpoint_every"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"{name} must be a whole number >= 0, got {v!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if not 0 <= self.lora_dropout < 1:
            raise ValueError(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        bad = [s for s in self.eval_at if not 1 <= s <= self.steps]
        if bad:
            raise ValueError(f"eval_at steps {bad} are outside 1..{self.steps} (steps)")
        if not self.eval:
            raise ValueError("eval must name at least one perplexity dataset (wiki, or a .txt/.jsonl file)")
        if self.train_text in data.HUB_SOURCES:
            raise ValueError(f"train_text {self.train_text!r} is a hub dataset whose overlap with the evaluation "
                             "cannot be checked offline; valid: wiki or a .txt/.jsonl file")
        return self
