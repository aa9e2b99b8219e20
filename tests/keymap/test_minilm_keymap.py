"""The MiniLM recipe: real all-MiniLM-L6-v2 weights mapped onto a TransformerEncoderLayer stack.

The mapped encoder must reproduce the token states and sentence
embeddings of the reference ``transformers`` BertModel on the same weights.
"""

from __future__ import annotations

import pytest
import torch

from recoverkit import Checkpointer
from recoverkit.state_dict.keymap import Keymap
from recoverkit.state_dict.transfer import transfer_parameters

SENTENCES = [
    "A man is playing a guitar.",
    "The quick brown fox jumps over the lazy dog near the old river bank.",
    "Checkpoints make long training runs survive preemption.",
    "Hi",
]
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def batch(minilm_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(minilm_dir), local_files_only=True)
    return tokenizer(SENTENCES, padding=True, return_tensors="pt")


@pytest.fixture(scope="module")
def reference_states(minilm_dir, batch):
    from transformers import BertModel

    reference = BertModel.from_pretrained(str(minilm_dir), local_files_only=True).eval()
    with torch.no_grad():
        return reference(**batch).last_hidden_state


@pytest.fixture(scope="module")
def encoder(minilm_recipe, minilm_weights, minilm_keymap_path):
    model = minilm_recipe.SentenceEncoder().eval()
    report = transfer_parameters(model, minilm_weights, keymap=minilm_keymap_path, strict=True)
    assert report.missing == []
    assert report.unused == []
    return model


def test_keymap_covers_every_key(minilm_weights, minilm_keymap_path, minilm_recipe):
    from recoverkit.state_dict.transfer import read_state_dict_shapes

    report = Keymap.from_file(minilm_keymap_path).plan(
        read_state_dict_shapes(minilm_weights), minilm_recipe.SentenceEncoder()
    )
    assert report.errors(strict=True) == []
    assert report.source_count == 104
    assert len(report.mapped) == 77
    assert sorted(report.dropped) == ["embeddings.position_ids", "pooler.dense.bias", "pooler.dense.weight"]
    fused = next(item for item in report.mapped if item.target == "layers.5.self_attn.in_proj_weight")
    assert fused.shape == (1152, 384)
    assert fused.rules == ("fused-qkv",)


def test_fused_projection_is_query_key_value(encoder, minilm_weights):
    from safetensors import safe_open

    with safe_open(str(minilm_weights), framework="pt") as weights:
        query = weights.get_tensor("encoder.layer.2.attention.self.query.weight")
        value_bias = weights.get_tensor("encoder.layer.2.attention.self.value.bias")
    fused = encoder.layers[2].self_attn
    assert torch.equal(fused.in_proj_weight[:384], query)
    assert torch.equal(fused.in_proj_bias[768:], value_bias)


def test_token_states_match_reference(encoder, batch, reference_states):
    with torch.no_grad():
        states = encoder(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    real = batch["attention_mask"].bool()
    difference = (states - reference_states)[real].abs().max().item()
    assert difference < TOLERANCE


def test_sentence_embeddings_match_reference(encoder, batch, reference_states, minilm_recipe):
    with torch.no_grad():
        ours = encoder.embed(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    expected = torch.nn.functional.normalize(minilm_recipe.mean_pool(reference_states, batch["attention_mask"]), dim=-1)
    assert ours.shape == (len(SENTENCES), 384)
    assert (ours - expected).abs().max().item() < TOLERANCE


def test_similar_sentences_are_closer(encoder, minilm_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(minilm_dir), local_files_only=True)
    pair = tokenizer(["A man plays the guitar.", "Someone is playing a guitar.", "Stock prices fell sharply."], padding=True, return_tensors="pt")
    with torch.no_grad():
        embeddings = encoder.embed(pair["input_ids"], pair["attention_mask"], pair["token_type_ids"])
    similar = float(embeddings[0] @ embeddings[1])
    unrelated = float(embeddings[0] @ embeddings[2])
    assert similar > unrelated + 0.3


def test_mapped_encoder_survives_a_checkpoint(encoder, batch, minilm_recipe, tmp_path):
    Checkpointer(tmp_path, {"encoder": encoder}).save_checkpoint()
    restored = minilm_recipe.SentenceEncoder().eval()
    Checkpointer(tmp_path, {"encoder": restored}).recover_if_possible()
    with torch.no_grad():
        args = (batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        assert torch.equal(restored.embed(*args), encoder.embed(*args))


def test_embed_script_prints_similarities(capsys):
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[2] / "recipes" / "minilm_keymap" / "embed.py"
    spec = importlib.util.spec_from_file_location("recoverkit_recipe_minilm_embed", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["A man plays the guitar.", "Someone is playing a guitar."])
    output = capsys.readouterr().out
    assert "Keymap 'minilm': 104 source keys -> 77 keys" in output
    rows = output.split("Cosine similarities:\n")[1].splitlines()
    assert rows[0].split()[0] == "1.000"
    assert float(rows[0].split()[1]) > 0.5
