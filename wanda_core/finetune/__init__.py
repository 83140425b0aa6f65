"""Fine-tuning a pruned model to recover what pruning lost: LoRA adapters (through `peft`) or dense
training of the surviving weights with the mask held fixed, as the paper's Section 5.

    from wanda_core.finetune import FinetuneConfig, finetune
    rec = finetune(FinetuneConfig(from_record="runs/default/<id>.json", how="lora", steps=50))
    rec["ppl"]["wiki"]["after"]["ppl"], rec["ppl"]["wiki"]["log_ppl_change"]

    python -m wanda_core finetune --from runs/default/<id>.json --how masked --steps 50

The starting point is a pruned model whose weights were kept: a run record written with
`prune --save-weights` (its weights lie in <runs>/weights/<id>.pt), or a directory written by
`prune --save-model DIR`.

- `lora`: rank-8 adapters (alpha 16, dropout 0.05) on q_proj and v_proj with learning rate 1e-4,
  the settings of the official code's lora_ft. The base stays sparse; the record gives its
  sparsity after training (unchanged) and the sparsity the model would have if the adapter were
  merged into it (a low-rank update is dense, so merging fills the pruned positions).
- `masked`: every parameter trains, and the Linear layers of the decoder blocks keep their mask:
  the gradient of each pruned weight is zeroed before the step (the official dense_ft) and the
  pruned weights are set back to zero after it, so they stay exactly zero. The record counts the
  zeros before and after, position by position.

Training text is disjoint from both the evaluation windows and the calibration windows. The
default `wiki` trains on the calibration pool of the embedded Wikipedia text (the evaluation
split holds other articles), in non-overlapping windows that avoid every token the source
record's calibration windows used. A text file is checked document by document against the
evaluation and calibration texts. Any overlap is an error before training.

Perplexity is measured before and after on the same windows (the source record's window length
and count), per window, so the change is paired: the record holds each window's NLL and a
bootstrap interval (over windows) of the change in log perplexity. `eval_at` adds points of the
perplexity-against-steps curve.

The run record (<runs>/finetune/<id>.json, named by the hash of the settings and the source) is
written atomically. Training checkpoints every `checkpoint_every` steps; a rerun of the same
command resumes from the last checkpoint, and a finished record is reused.
"""

from wanda_core.finetune.config import FinetuneConfig
from wanda_core.finetune.run import finetune

__all__ = ["FinetuneConfig", "finetune"]
