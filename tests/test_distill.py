"""``--method distill``: a frozen teacher (any ``--init`` source; here a tiny BERT saved with ``save_pretrained``)
taught to a small student, and ``evaluate --baseline teacher``.

End to end: a text teacher from a Hugging Face folder, image teachers from a selfsup run folder and from a timm
weights file (``method.teacher_encoder`` names its architecture), a speech teacher from a Hugging Face HuBERT
folder; the image and speech objectives are also checked at the method level with teachers built directly.
Nothing is downloaded: the ``no_network`` guard (conftest) fails any network connection.
"""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch
import torch.nn.functional as F
import transformers

from cli_checks import assert_one_line_error, global_step, logged_losses, run_cli
from selfsup import api
from selfsup.encoders import build_encoder
from selfsup.evaluation.label_efficiency import curves, format_table
from selfsup.modalities.text.tokenizer import load_tokenizer, token_spec, train_tokenizer
from selfsup.registry import get_method, list_methods
from selfsup.teachers import TEACHER_FILE, rebuild_teacher, teacher_record
from test_text_init import TINY, encode, sentences, source_embeddings, train_mlm, write_text_task

pytestmark = pytest.mark.usefixtures("no_network")  # conftest: any connection fails the test

STUDENT = {"name": "bert_tiny", "hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64}


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """A corpus of two topics, labeled splits, and a tiny BERT teacher that learnt the corpus (masked LM)."""
    root = tmp_path_factory.mktemp("distill")
    texts = write_text_task(root)
    tok = train_tokenizer(texts, vocab_size=120, min_frequency=1)
    torch.manual_seed(0)
    bert = transformers.BertForMaskedLM(transformers.BertConfig(vocab_size=len(tok), **TINY,
                                                                pad_token_id=tok.pad_token_id))
    train_mlm(bert, tok, texts)
    bert.save_pretrained(root / "teacher")
    tok.save_pretrained(root / "teacher")
    return {"root": root, "teacher": root / "teacher", "texts": texts}


def structure_agreement(student: torch.Tensor, teacher: torch.Tensor) -> float:
    """Pearson correlation between the pairwise cosine similarities of the student's and the teacher's embeddings
    of the same texts (off-diagonal pairs): 1 when the student orders every pair as the teacher does."""
    def pairs(x: torch.Tensor) -> torch.Tensor:
        x = F.normalize(x.float(), dim=-1)
        sims = x @ x.T
        return sims[torch.triu_indices(len(x), len(x), offset=1).unbind()]

    a, b = pairs(student), pairs(teacher)
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()).clamp_min(1e-12))


def text_method(ws, **hparams):
    tok = load_tokenizer(ws["teacher"])
    spec = token_spec(tok).to_dict()
    teacher = build_encoder({"name": "hf_text", "source": str(ws["teacher"]), **spec})
    torch.manual_seed(0)
    student = build_encoder({**STUDENT, **spec})
    method = get_method("distill", "text").cls(student, 128, teacher_model=teacher,
                                               teacher=str(ws["teacher"]), **hparams)
    return method, tok


def train(method, batches, steps: int, lr: float = 3e-3) -> list[float]:
    pretext = method.pretext("text")
    optimiser = torch.optim.AdamW([p for p in method.parameters() if p.requires_grad], lr=lr)
    losses = []
    method.train()
    for step in range(steps):
        out = method.loss(pretext(batches[step % len(batches)]))
        optimiser.zero_grad()
        out.loss.backward()
        optimiser.step()
        losses.append(float(out.loss.detach()))
    return losses


def text_batches(tok, texts, size=32):
    return [dict(zip(("input_ids", "attention_mask"), encode(tok, texts[i:i + size])))
            for i in range(0, len(texts), size)]


def test_student_moves_towards_the_teacher(ws):
    method, tok = text_method(ws)
    assert method.target == "pooled"  # text: sentence embeddings (Reimers & Gurevych 2020)
    held_out = dict(zip(("input_ids", "attention_mask"), encode(tok, [t for _, t in sentences(40, seed=11)])))

    def measure():
        method.eval()
        with torch.no_grad():
            student = method.encoder.embed(held_out)
            teacher = method.teacher.embed(held_out)
            cosine = float(F.cosine_similarity(method.head(student), teacher).mean())
        return cosine, structure_agreement(student, teacher)

    cosine0, agreement0 = measure()
    losses = train(method, text_batches(tok, ws["texts"]), steps=60)
    cosine1, agreement1 = measure()
    assert losses[-1] < 0.5 * losses[0]
    assert cosine1 > cosine0 + 0.5 and cosine1 > 0.9, (cosine0, cosine1)  # measured: -0.10 -> 0.99
    assert agreement1 > agreement0 + 0.2 and agreement1 > 0.9, (agreement0, agreement1)  # 0.56 -> 0.998
    # the agreement measure would expose a collapsed student: one vector for every text (up to noise)
    teacher = method.teacher.embed(held_out).detach()
    collapsed = torch.ones_like(teacher) + 1e-4 * torch.randn(teacher.shape, generator=torch.Generator().manual_seed(0))
    assert structure_agreement(collapsed, teacher) < 0.3
    # the teacher stayed frozen and outside the method's weights
    assert not any(name.startswith("teacher") or "._teacher" in name for name in method.state_dict())
    assert all(not p.requires_grad for p in method.teacher.parameters())
    torch.testing.assert_close(method.teacher.embed(held_out), source_embeddings(
        ws["teacher"], held_out["input_ids"], held_out["attention_mask"]), rtol=1e-5, atol=1e-5)


def test_teacher_embeddings_of_texts_are_cached_by_content(ws):
    """Text views are the sentences themselves: the teacher embeds each sentence once, whatever its padding."""
    method, tok = text_method(ws)
    method.pretext("text")
    assert method.cache is not None
    texts = [t for _, t in sentences(12, seed=4)]
    texts[3] = texts[3] + " near the door after rain"  # the longest: the first batch pads more than the second
    first, second = (dict(zip(("input_ids", "attention_mask"), encode(tok, part))) for part in (texts[:8], texts[4:]))
    assert first["input_ids"].shape[1] != second["input_ids"].shape[1]
    embed, computed = method.teacher.embed, []
    method.teacher.embed = lambda x: (computed.append(len(x["input_ids"])), embed(x))[1]
    with torch.no_grad():
        method.cache.embed(method.teacher, first)
        cached = method.cache.embed(method.teacher, second)
        torch.testing.assert_close(cached, embed(second), rtol=1e-5, atol=1e-5)
    assert computed == [8, 4]  # the second batch's 4 sentences seen before came from the cache
    uncached = get_method("distill", "text").cls(method.encoder, 128, teacher_model=method.teacher,
                                                 cache_teacher=False)
    uncached.pretext("text")
    assert uncached.cache is None


def test_the_losses_are_the_papers():
    from selfsup.losses import embedding_regression, layer_regression

    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(5, 8, generator=g), torch.randn(5, 8, generator=g)
    torch.testing.assert_close(embedding_regression(s, t, normalize=False), ((s - t) ** 2).mean())  # Reimers & Gurevych
    torch.testing.assert_close(embedding_regression(s, t), (2 - 2 * F.cosine_similarity(s, t)).mean())
    assert float(embedding_regression(3 * t, t)) == pytest.approx(0, abs=1e-6)  # normalised: the norm is free
    pred, target = torch.randn(2, 4, 8, generator=g), torch.randn(2, 4, 8, generator=g)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    per_frame = (pred - target).abs().mean(-1) - F.logsigmoid(F.cosine_similarity(pred, target, dim=-1))  # DistilHuBERT
    torch.testing.assert_close(layer_regression(pred, target, mask), per_frame[mask.bool()].mean())
    garbage = target.clone()
    garbage[0, 2:] = 1e6  # padding frames do not count
    torch.testing.assert_close(layer_regression(pred, garbage, mask), layer_regression(pred, target, mask))


@pytest.mark.parametrize("target", ["tokens", "layers"])
def test_token_and_layer_targets_regress_the_teachers_states(ws, target):
    """DistilHuBERT's loss on text tokens (same tokenizer: one grid): the heads learn the teacher's layers."""
    method, tok = text_method(ws, target=target, layers=2)
    assert len(method.heads) == (1 if target == "tokens" else 2)
    assert method.teacher_layers(12) == ([11] if target == "tokens" else [5, 11])
    losses = train(method, text_batches(tok, ws["texts"]), steps=30)
    assert losses[-1] < 0.7 * losses[0], losses


def test_image_student_learns_a_frozen_image_teacher():
    """Images: one SimCLR-augmented view for both; a tiny CNN student regresses a ViT teacher's embedding."""
    torch.manual_seed(0)
    teacher = build_encoder({"name": "vit_micro", "image_size": 16})
    student = build_encoder({"name": "tiny_cnn", "image_size": 16})
    method = get_method("distill", "image").cls(student, 16, teacher_model=teacher, teacher="vit")
    assert method.target == "pooled"
    images = torch.randint(0, 256, (64, 3, 16, 16), dtype=torch.uint8)
    pretext = method.pretext("image")
    assert method.cache is None  # a new random view at every step: nothing to reuse
    view = pretext(images[:4], torch.Generator().manual_seed(0))
    assert set(view) == {"view"} and view["view"].shape == (4, 3, 16, 16) and view["view"].dtype == torch.float32
    optimiser = torch.optim.AdamW([p for p in method.parameters() if p.requires_grad], lr=3e-3)
    cosines = []
    for step in range(20):
        out = method.loss(pretext(images[(step % 4) * 16:(step % 4 + 1) * 16], None))
        optimiser.zero_grad()
        out.loss.backward()
        optimiser.step()
        cosines.append(float(out.metrics["teacher_cosine"]))
    assert sum(cosines[-5:]) / 5 > sum(cosines[:5]) / 5 + 0.2, cosines
    method.to(torch.bfloat16)  # --precision bf16-true: the student and its view in bfloat16, the teacher not
    assert next(method.teacher.parameters()).dtype == torch.float32
    out = method.loss({"view": pretext(images[:8], None)["view"].to(torch.bfloat16)})
    assert torch.isfinite(out.loss)


def test_speech_encoders_on_one_frame_grid_distil_layer_by_layer():
    """Audio: wav2vec 2.0 student and teacher share a frame grid, so the default is DistilHuBERT's layer targets
    over the real frames; a teacher on another grid falls back to pooled embeddings."""
    torch.manual_seed(0)
    teacher = build_encoder({"name": "wav2vec2_tiny", "sample_rate": 8000})
    student = build_encoder({"name": "wav2vec2_tiny", "sample_rate": 8000, "num_layers": 1})
    cls = get_method("distill", "audio").cls
    method = cls(student, 4000, teacher_model=teacher, teacher="w2v")
    assert method.target == "layers" and len(method.heads) == 3
    other = build_encoder({"name": "wav2vec2_tiny", "sample_rate": 16000})
    assert cls(student, 4000, teacher_model=other, teacher="w2v").target == "pooled"
    waves = torch.randn(8, 4000)
    lengths = torch.tensor([4000] * 4 + [2500] * 4)
    batch = {"input_values": waves, "attention_mask": (torch.arange(4000)[None] < lengths[:, None]).long()}
    pretext = method.pretext("audio")
    optimiser = torch.optim.AdamW([p for p in method.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for _ in range(15):
        out = method.loss(pretext(batch, None))
        optimiser.zero_grad()
        out.loss.backward()
        optimiser.step()
        losses.append(float(out.loss.detach()))
    assert losses[-1] < losses[0], losses


def pretrain_argv(ws, out, *extra, encoder=("--encoder", "bert_tiny")):
    return ["pretrain", ws["root"] / "corpus.txt", "--modality", "text", "--method", "distill", *encoder,
            "--out", out, "--batch-size", "32", "--no-progress", *extra]


def test_pretrain_distill_then_resume_and_evaluate_against_the_teacher(ws, tmp_path):
    run = tmp_path / "run"
    teacher = f"method.teacher={ws['teacher']}"
    code, _, err = run_cli(pretrain_argv(ws, run, "--set", teacher, "--max-steps", "12"))
    assert code == 0, err
    losses = logged_losses(run)
    assert losses[-1] < losses[0]
    # the student reads the teacher's token ids: its tokenizer, copied into the run
    assert load_tokenizer(run / "tokenizer").get_vocab() == load_tokenizer(ws["teacher"]).get_vocab()
    record = teacher_record(run)
    assert record["source"] == str(ws["teacher"]) and record["encoder"]["name"] == "hf_text"
    assert record["parameters"]["teacher"] == sum(p.numel() for p in transformers.AutoModel.from_pretrained(
        str(ws["teacher"]), local_files_only=True, add_pooling_layer=False).parameters())
    assert record["parameters"]["student"] == sum(p.numel() for p in api.load(run).parameters())
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert all(k.startswith(("method.encoder.", "method.head.")) for k in state), sorted(state)[:5]
    code, _, err = run_cli(pretrain_argv(ws, run, "--set", teacher, "--max-steps", "16"))
    assert code == 0 and global_step(run) == 16, err  # resumed: the teacher rebuilt from its source

    texts = [t for _, t in sentences(6, seed=9)]
    ids, mask = encode(load_tokenizer(ws["teacher"]), texts)
    with torch.no_grad():  # the evaluated teacher is the source model, unchanged by training
        rebuilt = rebuild_teacher(run, record).embed({"input_ids": ids, "attention_mask": mask})
    torch.testing.assert_close(rebuilt, source_embeddings(ws["teacher"], ids, mask), rtol=1e-5, atol=1e-5)

    code, out, err = run_cli(["evaluate", run, "--train", ws["root"] / "train.tsv", "--test", ws["root"] / "test.tsv",
                              "--protocol", "linear,finetune", "--label-fractions", "1.0", "--finetune-steps", "3",
                              "--baseline", "teacher,scratch,tfidf"])
    assert code == 0, err
    assert f"[teacher] {ws['teacher']}: {record['parameters']['teacher']:,} parameters" in out
    header = out.splitlines()[-4]
    assert "teacher" in header and "gain_teacher" in header
    rows = json.loads((run / "eval.json").read_text())["results"]
    assert {r["encoder"] for r in rows} == {"pretrained", "teacher", "scratch", "tfidf"}
    assert {r["protocol"] for r in rows if r["encoder"] == "teacher"} == {"linear", "finetune"}
    assert (run / "plots" / "label_efficiency.png").exists()

    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("".join(f"{i % 5}\t{a}\t{b}\n" for i, ((_, a), (_, b)) in
                             enumerate(zip(sentences(12, seed=6), sentences(12, seed=7)))))
    rows = api.evaluate(run, test=pairs, protocols=["similarity"], baseline=["teacher"])
    assert {r.encoder for r in rows} == {"pretrained", "teacher"}


def test_table_and_plot_show_the_teacher_rows():
    from selfsup.evaluation import EvalResult

    rows = [EvalResult("linear", 1.0, 40, name, "accuracy", value)
            for name, value in (("pretrained", 0.8), ("teacher", 0.9), ("scratch", 0.5), ("init", 0.7))]
    table = format_table(rows)
    assert table.splitlines()[0].split()[-3:] == ["gain", "gain_init", "gain_teacher"]
    assert table.splitlines()[-1].split()[-1] == "-0.1000"
    styles = {style["label"]: (style["linestyle"], style["marker"]) for _, _, style in curves(rows)}
    assert "linear · teacher" in styles and len(set(styles.values())) == 4  # every row its own line


def test_distill_mistakes_are_one_line(ws, tmp_path):
    never = tmp_path / "never"
    assert_one_line_error(*run_cli(pretrain_argv(ws, never))[::2], "method 'distill' learns from a teacher",
                          "--set method.teacher=SOURCE")
    vit = tmp_path / "vit"
    transformers.ViTConfig().save_pretrained(vit)
    assert_one_line_error(*run_cli(pretrain_argv(ws, never, "--set", f"method.teacher={vit}"))[::2],
                          f"distill: method.teacher={vit}", "'vit' is not a text model", "--modality image")
    assert_one_line_error(*run_cli(pretrain_argv(ws, never, "--set", f"method.teacher={tmp_path / 'missing'}"))[::2],
                          "method.teacher=", "missing")
    assert_one_line_error(*run_cli(pretrain_argv(ws, never, "--set", f"method.teacher={ws['teacher']}",
                                                 "--tokenizer", "bpe"))[::2],
                          f"distill: method.teacher={ws['teacher']}: the teacher reads its inputs with "
                          f"data.tokenizer={ws['teacher']}, but this run has data.tokenizer=bpe", "leave that setting out")
    other = tmp_path / "other"  # a student started from another checkpoint, with its own tokenizer
    shutil.copytree(ws["teacher"], other)
    assert_one_line_error(*run_cli(pretrain_argv(ws, never, "--set", f"method.teacher={ws['teacher']}", "--init",
                                                 other, encoder=()))[::2], f"data.tokenizer={other}", "--init")
    assert_one_line_error(*run_cli(pretrain_argv(ws, never, "--set", f"method.teacher={ws['teacher']}",
                                                 "--set", "method.target=frames"))[::2], "method.target")
    # the teacher's architecture reaches the modality as --encoder does for --init (a text checkpoint sets its own)
    assert_one_line_error(*run_cli(pretrain_argv(ws, never, "--set", f"method.teacher={ws['teacher']}",
                                                 "--set", "method.teacher_encoder=bert_mini"))[::2],
                          f"distill: method.teacher={ws['teacher']}", "sets the architecture",
                          "leave out --set method.teacher_encoder=bert_mini")
    assert not never.exists()  # every mistake above is caught before anything is written

    plain = tmp_path / "plain"
    api.pretrain(ws["root"] / "corpus.txt", "mlm", plain, modality="text", encoder="bert_tiny", max_steps=1,
                 batch_size=16, vocab_size=100, progress_bar=False)
    code, _, err = run_cli(["evaluate", plain, "--train", ws["root"] / "train.tsv", "--test", ws["root"] / "test.tsv",
                            "--baseline", "teacher"])
    assert_one_line_error(code, err, "--baseline teacher needs a distilled run", "this run has no teacher")


def test_methods_lists_distill_for_text_image_and_audio():
    for modality in ("text", "image", "audio"):
        assert "distill" in [m.name for m in list_methods(modality)]
    assert "distill" not in [m.name for m in list_methods("sequence")]
    code, out, _ = run_cli(["methods", "--modality", "audio"])
    assert code == 0 and any(line.startswith("distill") and "distillation" in line for line in out.splitlines())


def test_student_started_from_a_checkpoint(ws, tmp_path):
    """The student may itself be an ``--init`` checkpoint (here the teacher's own folder: the same tokenizer)."""
    run = tmp_path / "run"
    api.pretrain(ws["root"] / "corpus.txt", "distill", run, modality="text", init=ws["teacher"], max_steps=2,
                 batch_size=16, overrides={"method.teacher": str(ws["teacher"])}, progress_bar=False)
    assert api.load(run).config["name"] == "hf_text"
    record = teacher_record(run)
    assert record["parameters"]["student"] == record["parameters"]["teacher"]


def test_image_teacher_from_a_selfsup_run(tmp_path, write_images):
    """Images, end to end: the teacher is a selfsup run folder (a 16 px ViT), the student a tiny CNN; the run takes
    the teacher's image size, keeps the teacher out of its checkpoint, and evaluates against it."""
    data, train_dir, test_dir = (write_images(tmp_path / name, n, seed=s)
                                 for name, n, s in (("data", 6, 0), ("train", 4, 1), ("test", 3, 2)))
    source = tmp_path / "vit"
    quiet = ["--no-progress", "--batch-size", "8"]
    code, _, err = run_cli(["pretrain", data, "--method", "simclr", "--encoder", "vit_micro", "--image-size", "16",
                            "--max-steps", "2", "--out", source, *quiet])
    assert code == 0, err
    run = tmp_path / "distilled"
    code, _, err = run_cli(["pretrain", data, "--method", "distill", "--encoder", "tiny_cnn", "--set",
                            f"method.teacher={source}", "--max-steps", "6", "--out", run, *quiet])
    assert code == 0, err
    assert api.load(run).config["image_size"] == 16  # the teacher's stored size, not the default 32
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert all(k.startswith(("method.encoder.", "method.head.")) for k in state)
    record = teacher_record(run)
    images = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():  # the teacher is the source run's encoder, as stored
        torch.testing.assert_close(rebuild_teacher(run, record).embed(images), api.load(source).eval().embed(images))
    rows = api.evaluate(run, train_dir, test_dir, protocols=["knn", "linear"], label_fractions=[1.0],
                        baseline="teacher,pixels")
    assert {r.encoder for r in rows} == {"pretrained", "teacher", "pixels"}


def test_image_student_smaller_than_its_teacher(tmp_path, write_images):
    """``method.teacher_input_size``: the student learns at 8 px from a teacher that reads the same views at its own
    16 px (a stored ViT, whose position table fixes its size); the run keeps the student's size, and the rebuilt
    teacher (``--baseline teacher``) reads the run's images at its own size too."""
    from torchvision.transforms.v2.functional import resize

    data, train_dir, test_dir = (write_images(tmp_path / name, n, seed=s)
                                 for name, n, s in (("data", 6, 0), ("train", 4, 1), ("test", 3, 2)))
    source = tmp_path / "vit"
    quiet = ["--no-progress", "--batch-size", "8"]
    assert run_cli(["pretrain", data, "--method", "simclr", "--encoder", "vit_micro", "--image-size", "16",
                    "--max-steps", "1", "--out", source, *quiet])[0] == 0
    run = tmp_path / "small"
    argv = ["pretrain", data, "--method", "distill", "--encoder", "tiny_cnn", "--image-size", "8", "--set",
            f"method.teacher={source}", "--max-steps", "6", *quiet]
    code, _, err = run_cli([*argv, "--out", tmp_path / "same-size"])  # the 16 px ViT cannot read 8 px views
    assert_one_line_error(code, err, "model.pos_embed", "--set method.teacher_input_size=SIZE")
    code, _, err = run_cli([*argv, "--set", "method.teacher_input_size=16", "--out", run])
    assert code == 0, err
    assert api.load(run).config["image_size"] == 8
    losses = logged_losses(run)
    assert all(map(math.isfinite, losses))
    images = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(rebuild_teacher(run, teacher_record(run)).embed(images),
                                   api.load(source).eval().embed(resize(images, [16, 16], antialias=True)))
    rows = api.evaluate(run, train_dir, test_dir, protocols=["linear"], label_fractions=[1.0], baseline="teacher")
    assert {r.encoder for r in rows} == {"pretrained", "teacher"}


def test_an_image_size_given_at_its_default_is_kept(tmp_path):
    """``--image-size 32`` is the default's value, but given: a timm folder teacher pretrained at its own size does
    not replace it (it does when the size is left out)."""
    import timm
    from timm.models import save_for_hf

    from selfsup.config import RunConfig, set_value
    from selfsup.registry import get_method
    from selfsup.teachers import adopt_teacher_data

    folder = tmp_path / "timm_folder"
    save_for_hf(timm.create_model("test_resnet", num_classes=0), str(folder),
                model_config={"architecture": "test_resnet"}, safe_serialization=True)
    native = timm.create_model("test_resnet").pretrained_cfg["input_size"][-1]
    assert native != 32
    sizes = {}
    for given in (False, True):
        config = RunConfig()
        set_value(config, "method.teacher", str(folder))
        if given:
            set_value(config, "data.image_size", 32, source="--image-size")
        adopt_teacher_data(config, get_method("distill", "image").cls)
        sizes[given] = config.data.image_size
    assert sizes == {False: native, True: 32}


def test_teacher_input_size_is_for_images_only(ws, tmp_path):
    code, _, err = run_cli(["pretrain", ws["root"] / "corpus.txt", "--modality", "text", "--method", "distill",
                            "--set", f"method.teacher={ws['teacher']}", "--set", "method.teacher_input_size=64",
                            "--max-steps", "1", "--no-progress", "--out", tmp_path / "run"])
    assert_one_line_error(code, err, "method.teacher_input_size=64", "leave it at 0")


def test_speech_teacher_from_a_hugging_face_folder(tmp_path):
    """Audio, end to end: a tiny HuBERT folder as teacher, wav2vec2_tiny as student: their frames line up (stride
    320, window 400 samples at 16 kHz), so the student regresses the teacher's layers frame by frame."""
    from test_audio_cli import write_classes
    from test_audio_init import CHECKPOINTS, RATE

    cls, config, _ = CHECKPOINTS["hubert"]
    teacher = tmp_path / "hubert"
    torch.manual_seed(0)
    cls(config).save_pretrained(teacher)
    transformers.Wav2Vec2FeatureExtractor(sampling_rate=RATE, do_normalize=False).save_pretrained(teacher)
    train_dir, test_dir = write_classes(tmp_path / "train", per_class=6, seed=1), write_classes(tmp_path / "test",
                                                                                              per_class=3, seed=2)
    run = tmp_path / "run"
    api.pretrain(train_dir, "distill", run, modality="audio", encoder="wav2vec2_tiny", max_steps=6, batch_size=6,
                 overrides={"method.teacher": str(teacher)}, progress_bar=False)
    losses = logged_losses(run)
    assert all(map(math.isfinite, losses)) and losses[-1] < losses[0]
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert {k.split(".")[1] for k in state} == {"encoder", "heads"}  # DistilHuBERT's heads; no teacher weights
    rows = api.evaluate(run, train_dir, test_dir, protocols=["knn"], label_fractions=[1.0], baseline="teacher,mfcc")
    assert {r.encoder for r in rows} == {"pretrained", "teacher", "mfcc"}


def test_image_teacher_from_timm_weights(tmp_path, write_images):
    """A timm architecture plus a weights file as teacher: ``method.teacher_encoder`` names the architecture (as
    ``--encoder`` does for ``--init``); the teacher embeds as timm does, with its own input statistics."""
    import timm
    from safetensors.torch import save_file
    from test_image_init import embed, raw_images, timm_embeddings

    weights = tmp_path / "test_resnet.safetensors"
    torch.manual_seed(0)
    save_file({k: v.contiguous() for k, v in timm.create_model("test_resnet", num_classes=0).state_dict().items()},
              str(weights))
    data, train_dir, test_dir = (write_images(tmp_path / name, n, seed=s)
                                 for name, n, s in (("data", 6, 0), ("train", 4, 1), ("test", 3, 2)))
    argv = ["pretrain", data, "--method", "distill", "--encoder", "tiny_cnn", "--image-size", "32", "--set",
            f"method.teacher={weights}", "--max-steps", "4", "--no-progress", "--batch-size", "8"]
    assert_one_line_error(*run_cli([*argv, "--out", tmp_path / "never"])[::2], f"distill: method.teacher={weights}",
                          "--set method.teacher_encoder=ARCH")
    run = tmp_path / "run"
    code, _, err = run_cli([*argv, "--set", "method.teacher_encoder=test_resnet", "--out", run])
    assert code == 0, err
    record = teacher_record(run)
    assert record["encoder"]["arch"] == "test_resnet"
    images = raw_images()  # uint8; selfsup normalises them, the teacher converts to its own statistics
    torch.testing.assert_close(embed(rebuild_teacher(run, record), images),
                               timm_embeddings("test_resnet", weights, images), rtol=1e-5, atol=1e-5)
    rows = api.evaluate(run, train_dir, test_dir, protocols=["linear"], label_fractions=[1.0], baseline="teacher")
    assert {r.encoder for r in rows} == {"pretrained", "teacher"}
