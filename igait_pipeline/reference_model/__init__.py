"""The bundled reference model (model.pt + model_card.json) and the code that trains it (train.py).

The reference model is trained on simulated walkers only (igait_pipeline.reference_model.synthetic) and is not
clinically validated; it exists so the pipeline runs end to end and a real model can later replace it in the
model store.
"""
from pathlib import Path

BUNDLED_DIR = Path(__file__).resolve().parent
REFERENCE_NAME = "igait-reference-mlp"
REFERENCE_VERSION = "0.3.0"
