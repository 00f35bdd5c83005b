#!/usr/bin/env python
"""Train the bundled reference model on synthetic walkers (deterministic, CPU, well under a minute on 2 cores).

    .venv/bin/python scripts/train_reference_model.py            # writes igait_pipeline/reference_model/
    .venv/bin/python scripts/train_reference_model.py --out /tmp/m --walkers 200

The result is NOT clinically validated: it is trained on simulated walkers only (see the model card).
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from igait_pipeline.reference_model import BUNDLED_DIR, train  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(BUNDLED_DIR), help="directory for model.pt and model_card.json")
    ap.add_argument("--walkers", type=int, default=train.WALKERS, help="simulated walkers (half per class)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=train.EPOCHS)
    ap.add_argument("--workers", type=int, default=2, help="processes simulating walkers (result is the same)")
    a = ap.parse_args(argv)
    command = (f"python scripts/train_reference_model.py --walkers {a.walkers} --seed {a.seed} "
               f"--epochs {a.epochs}")
    card = train.train_reference(a.out, walkers=a.walkers, seed=a.seed, workers=a.workers, epochs=a.epochs,
                                 command=command)
    print(f"wrote {Path(a.out) / 'model.pt'} (sha256 {card['sha256']}) and model_card.json; held-out synthetic "
          f"metrics: {card['metrics']['held_out_synthetic']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
