"""The `selfsup` command. Argument parsing only: every command calls the Python API."""

from __future__ import annotations

import argparse
import atexit
import json
import logging
import os
import sys
import threading
import warnings
from collections.abc import Sequence

from . import __version__
from .errors import SelfSupError
from .modalities import modality_infos


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _names(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="selfsup",
        description="Self-supervised pretraining on your unlabeled data, with an honest label-efficiency report.",
    )
    parser.add_argument("--version", action="version", version=f"selfsup {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show library logs")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("pretrain", help="pretrain an encoder on unlabeled data (resumes an existing RUN_DIR)")
    modalities = modality_infos()
    p.add_argument("data", metavar="DATA", help="; ".join(info.data_help for info in modalities) + "; or shards "
                   "(`selfsup shard`): a folder, pattern (train-{0000..0127}.tar, *.parquet) or fsspec URL of them")
    p.add_argument("--modality", choices=[info.name for info in modalities], help="what DATA holds (default image)")
    p.add_argument("--method", help="pretext method (see `selfsup methods`), or auto: pilot a shortlist per "
                                    "modality, keep the best by RankMe and alpha-ReQ on a held-out part of DATA (no labels); default "
                                    + ", ".join(f"{info.default_method} for {info.unit}" for info in modalities))
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="run folder: config.yaml, checkpoints/, metrics.csv")
    p.add_argument("--init", metavar="SOURCE",
                   help="start from a checkpoint, not random weights: a selfsup run or export folder of the same "
                        "modality (its encoder, weights and data preparation; any method that fits; a sequence run's "
                        "item map grows by the log's new items); text, audio (wav2vec2, HuBERT, WavLM, data2vec-audio) "
                        "or images (ViT, DINOv2, ConvNeXt): a Hugging Face model folder (config.json + weights + "
                        "tokenizer or feature extractor) or a model id in the local Hugging Face cache (never "
                        "downloaded); images also a weights file (.safetensors, .pth) with --encoder TIMM_ARCH, or "
                        "a timm model folder (config.json naming its architecture + model.safetensors)")
    p.add_argument("--encoder", help="backbone, e.g. tiny_cnn, resnet18, resnet18_cifar, vit_micro; bert_tiny, gpt_tiny; wav2vec2_tiny (default: the method's); with --init FILE, the timm architecture of its weights")
    # the numeric flags stay text here: the config converts and range-checks them (one line for a mistake)
    p.add_argument("--epochs", help="passes over the data (default 100; total, across resumes)")
    p.add_argument("--max-minutes", help="stop after this much training time in all, across resumes (a checkpoint is kept)")
    p.add_argument("--max-steps", help="stop after this many optimiser steps in all, across resumes")
    p.add_argument("--batch-size", help="samples (images, texts) per step and per device (default 256)")
    p.add_argument("--image-size", help="images are resized (shorter side) and centre-cropped to this (default 32)")
    p.add_argument("--encoding", help="text files' encoding (default utf-8; e.g. latin-1)")
    p.add_argument("--tokenizer", help="text: wordpiece (default) or bpe, trained on DATA; or a tokenizer folder (Hugging Face files)")
    p.add_argument("--vocab-size", help="text: vocabulary of a trained tokenizer (default 8000)")
    p.add_argument("--max-length", help="text: tokens per text, longer ones are truncated; sequences: the most "
                                                  "recent items kept per history (default 128)")
    p.add_argument("--sample-rate", help="audio: recordings are resampled to this rate in Hz (default 16000)")
    p.add_argument("--clip-seconds", help="audio: random training crops of at most this length (default 2.0)")
    p.add_argument("--seed", help="random seed (default 0)")
    p.add_argument("--precision", help="Lightning precision: auto (default: bf16-mixed on GPUs and on CPUs with native bf16, "
                                                  "else 32-true), 32-true, bf16-mixed, 16-mixed")
    p.add_argument("--strict", action="store_true", default=None, help="stop at the first unreadable file instead of skipping it")
    p.add_argument("--cache", choices=["auto", "memory", "stream"],
                   help="memory: decode every image once into RAM and augment whole batches on the device; "
                        "stream: read and augment per sample in loader workers (data larger than RAM; a .parquet log: "
                        "grouped on disk); auto (default) picks by size")
    p.add_argument("--num-workers", help="data-loader worker processes (default 0: in-process, fastest with the memory cache)")
    p.add_argument("--accelerator", help="Lightning accelerator: auto (default), cpu, gpu")
    p.add_argument("--devices", help="devices per node: auto (default), a count such as 4, or a list such as 0,1")
    p.add_argument("--num-nodes", help="machines taking part (multi-node DDP; launch with torchrun or SLURM, see README)")
    p.add_argument("--strategy", help="Lightning strategy: auto (default; DDP when devices > 1), ddp, ddp_spawn, fsdp")
    p.add_argument("--config", metavar="FILE.yaml", help="YAML with sections data, method, encoder, optim, trainer")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override any setting, e.g. --set optim.lr=0.001 --set method.temperature=0.2")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--logger", help="csv (default: metrics.csv only), or tensorboard, mlflow, wandb beside it, "
                                    "written offline into RUN_DIR (each an extra: pip install 'selfsup[NAME]')")
    p.add_argument("--probe", metavar="LABELED", help="a few labelled samples (as evaluate --train takes them): kNN "
                                                      "and linear-probe accuracy logged while training (probe/knn, "
                                                      "probe/linear in metrics.csv)")
    p.add_argument("--on-collapse", help="warn (default) or stop when embedding std, RankMe or a flat loss show "
                                         "collapse; stop keeps the last healthy checkpoint (RUN_DIR/health.json)")

    e = sub.add_parser("evaluate", help="label-efficiency evaluation: pretrained vs scratch at label fractions; "
                                        "sequences also: leave-one-out next-item ranking; audio: speech "
                                        "recognition (asr); text: translation")
    e.add_argument("run", metavar="RUN_DIR")
    e.add_argument("--train", metavar="LABELED", help="images, audio: a folder with one subfolder per class; "
                                                      "text: .tsv/.csv of label<TAB>text (or columns label,text); "
                                                      "audio also: a .csv/.tsv with columns path,label; "
                                                      "sequence: a .csv/.tsv with columns user,label (users of the run's log)")
    e.add_argument("--test", metavar="LABELED",
                   help="as --train; for --protocol similarity a .tsv of score<TAB>sentence1<TAB>sentence2 "
                        "(not used by --protocol ranking)")
    e.add_argument("--protocol", type=_names, default=["knn", "linear", "finetune"],
                   help="comma list of knn, linear, finetune; or similarity (text: Spearman of cosine similarities); "
                        "or ranking (sequence: leave-one-out HR@10 and NDCG@10 over all items on the run's own "
                        "log, with a popularity baseline); or asr (audio: CTC speech recognition, cer and wer; "
                        "--train/--test a LibriSpeech-style folder or a csv/tsv of path,transcript); or "
                        "translation (text: an encoder-decoder on a tsv of source<TAB>target or two aligned "
                        "files SRC,TGT; bleu and chrf)")
    e.add_argument("--label-fractions", type=_floats, default=[0.01, 0.1, 1.0], help="comma list, e.g. 0.01,0.1,1.0")
    e.add_argument("--baseline", default="scratch",
                   help="comma list: scratch (same model, random init), init (a run made with --init: its starting "
                        "checkpoint, unadapted), teacher (a distill run: its teacher), tfidf (text: TF-IDF + "
                        "logistic regression), "
                        "mfcc (audio: MFCC statistics + logistic regression), pixels (images: raw pixels "
                        "shrunk to 8 px + logistic regression), or none")
    e.add_argument("--encoding", default="utf-8", help="text files' encoding (default utf-8)")
    e.add_argument("--json", metavar="OUT.json", help="where to write the results (default RUN_DIR/eval.json)")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--finetune-steps", type=int, help="optimisation steps for finetune (same for every encoder); for --protocol asr and "
                                                          "translation, per label budget (default 300)")
    e.add_argument("--label-minutes", type=_floats, help="--protocol asr: label budgets in minutes of transcribed "
                                                         "audio, e.g. 10,30,60 (speaker-balanced, fixed seed)")
    e.add_argument("--save-finetuned", metavar="DIR", help="--protocol asr, translation: keep the best fine-tuned "
                                                           "model of the largest label budget in DIR (a Hugging "
                                                           "Face folder that transcribe/translate use)")

    r = sub.add_parser("report", help="rebuild RUN_DIR/report.html: settings, data quality, curves and health, method "
                                      "choice, label efficiency, embedding map, nearest neighbours (one file, no network)")
    r.add_argument("run", metavar="RUN_DIR")

    m = sub.add_parser("methods", help="list the registered methods")
    m.add_argument("--modality", choices=[info.name for info in modalities])
    m.add_argument("--json", action="store_true", help="print JSON instead of a table")

    b = sub.add_parser("embed", help="embed every input under DATA with a run's encoder")
    b.add_argument("run", metavar="RUN_DIR")
    b.add_argument("data", metavar="DATA", help="what the run was trained on: images, texts, recordings (folders, "
                                                "files or shards), or an interaction log (one embedding per user)")
    b.add_argument("--out", required=True, metavar="FILE", help=".npy (rows in sorted path order; small inputs) or "
                   ".parquet (path + embedding; large inputs: written in parts, a folder of them when there are "
                   "several, and a re-run continues where it stopped) or a folder of parquet parts; sequences: users "
                   "here, items in FILE's NAME.items.EXT")
    b.add_argument("--batch-size", type=int, default=256)
    b.add_argument("--part-rows", type=int, default=None, metavar="N", help="inputs per parquet part (default 100000)")
    b.add_argument("--overwrite", action="store_true", help="replace an --out made from another run, data or settings")
    b.add_argument("--strict", action="store_true", help="stop at the first unreadable input instead of skipping it")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    b.add_argument("--encoding", default="utf-8", help="text files' encoding (default utf-8)")

    t = sub.add_parser("transcribe", help="transcribe recordings with a speech recogniser that evaluate --protocol asr "
                                          "--save-finetuned DIR wrote; prints path<TAB>transcript")
    t.add_argument("model", metavar="MODEL_DIR", help="the --save-finetuned folder")
    t.add_argument("audio", metavar="AUDIO", nargs="+", help="audio files, folders of them or .txt lists")
    t.add_argument("--out", metavar="FILE.tsv", help="also write the lines here")

    i = sub.add_parser("inspect", help="data quality: unreadable files, duplicates, near-duplicates, train/test "
                                       "leaks, outliers, class balance, sizes and lengths")
    i.add_argument("data", metavar="DATA", help="what pretrain reads (" + "; ".join(info.data_help for info in modalities) + ")")
    i.add_argument("--run", metavar="RUN_DIR", help="compare items by this run's encoder (cosine of embeddings) instead "
                                                   "of the cheap default, and write RUN_DIR/inspection.json")
    i.add_argument("--against", metavar="OTHER", help="data of the same kind (e.g. the test set): its items with a "
                                                      "near-duplicate in DATA are leaks")
    i.add_argument("--modality", choices=[info.name for info in modalities], help="what DATA holds (default: the "
                                                                                  "run's, else image)")
    i.add_argument("--json", metavar="OUT.json", help="write every finding (keys unreadable, exact_duplicates, "
                                                      "near_duplicates, leaks, outliers, plus counts, thresholds, "
                                                      "distributions, class_balance)")
    i.add_argument("--write-clean", metavar="LIST", help="write the items to keep, one per line (paths; texts for "
                                                         "text; user ids for sequences): all readable items but later "
                                                         "exact copies, the second of each near-duplicate pair and "
                                                         "DATA items that leak into --against")
    i.add_argument("--threshold", type=float, help="near-duplicate from this cosine similarity (default: 0.8125 for "
                                                  "perceptual hashes, i.e. at most 6 of 64 bits differ; 0.5 estimated "
                                                  "Jaccard for text MinHash; 0.98 for audio log-mel; 0.8 for sequence "
                                                  "item sets; 0.95 with --run)")
    i.add_argument("--outlier-k", type=int, default=5, help="outlier score: 1 - cosine to the k-th nearest distinct "
                                                            "item (default 5); listed when above the median by 3.5 scaled MADs")
    i.add_argument("--max-outliers", type=int, default=20, help="outliers listed at most (default 20)")
    i.add_argument("--block", type=int, default=1024, help="items per block of the similarity search (memory: "
                                                           "block x block similarities at a time; default 1024)")
    i.add_argument("--encoding", help="text files' encoding (default: the run's, else utf-8)")
    i.add_argument("--batch-size", type=int, default=256, help="items per encoder batch with --run")

    s = sub.add_parser("shard", help="write DATA into shards (tar for images and audio, parquet for texts and logs) "
                                     "that pretrain, evaluate and embed stream")
    s.add_argument("data", metavar="DATA", help="a folder, file list, text file or log (class folders and a label "
                                                "column are kept as labels)")
    s.add_argument("--out", required=True, metavar="DIR", help="a new folder: train-0000.tar ... (or .parquet) and "
                                                               "shards.json")
    s.add_argument("--shard-size", default="512MB", help="at most this much per shard (default 512MB)")
    s.add_argument("--modality", choices=[info.name for info in modalities], help="what DATA holds (default image)")
    s.add_argument("--encoding", default="utf-8", help="text files' encoding (default utf-8)")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")

    x = sub.add_parser("export", help="export a run's encoder")
    x.add_argument("run", metavar="RUN_DIR")
    x.add_argument("--format", default="safetensors", choices=["safetensors", "huggingface", "onnx"],
                   help="safetensors (any encoder; sequences add item_map.json), huggingface (text, audio and "
                        "sequences: a folder AutoModel and AutoTokenizer / AutoFeatureExtractor load) or onnx (any "
                        "encoder: model.onnx from raw inputs to the embedding; pip install 'selfsup[onnx]')")
    x.add_argument("--out", required=True, metavar="DIR")

    t = sub.add_parser("translate", help="translate a text file line by line with a model fine-tuned by `evaluate "
                                         "--protocol translation --save-finetuned DIR`")
    t.add_argument("model", metavar="MODEL_DIR", help="the --save-finetuned folder (a Hugging Face seq2seq model)")
    t.add_argument("--input", required=True, metavar="FILE", help="one sentence a line")
    t.add_argument("--out", metavar="FILE", help="where to write one translation a line (default: print them)")
    t.add_argument("--num-beams", type=int, help="beam width (default: the model's, 4)")

    d = sub.add_parser("demo", help="pretrain + label-efficiency evaluation on scikit-learn's handwritten digits (a few minutes on a CPU)")
    d.add_argument("--out", default="runs/demo", metavar="DIR")
    d.add_argument("--method", default="simclr")
    d.add_argument("--epochs", type=int, default=30)
    return parser


def _quiet_libraries(verbose: bool) -> None:
    """Library logs: all of them with ``-v``; else warnings only, and none of Lightning's chatter.

    Lightning resets its loggers' levels when it is imported, so their quieting waits for that import
    (:func:`selfsup.library_logs.quiet_lightning`, run by ``selfsup.train``): commands that never train never
    pay for importing Lightning.
    """
    from . import library_logs

    library_logs.QUIET = not verbose
    if verbose:
        logging.basicConfig(level=logging.INFO)
        return
    logging.basicConfig(level=logging.WARNING, format="selfsup: %(message)s")
    warnings.filterwarnings("ignore", module="lightning")
    warnings.filterwarnings("ignore", category=UserWarning, module="torch")
    library_logs.quiet_lightning()


def _run(args: argparse.Namespace) -> None:
    if args.command == "methods":  # metadata only: no torch, no Lightning
        _print_methods(args.modality, args.json)
        return
    from . import api  # imports torch

    if args.command == "pretrain":
        run = api.pretrain(
            args.data, args.method, args.out, encoder=args.encoder, epochs=args.epochs,
            max_minutes=args.max_minutes, max_steps=args.max_steps,
            batch_size=args.batch_size, image_size=args.image_size, modality=args.modality, encoding=args.encoding,
            tokenizer=args.tokenizer, vocab_size=args.vocab_size, max_length=args.max_length,
            sample_rate=args.sample_rate, clip_seconds=args.clip_seconds,
            seed=args.seed, precision=args.precision,
            strict=args.strict, cache=args.cache, accelerator=args.accelerator, devices=args.devices,
            num_nodes=args.num_nodes, strategy=args.strategy, num_workers=args.num_workers,
            config=args.config, overrides=args.overrides,
            progress_bar=False if args.no_progress else None, init=args.init, logger=args.logger,
            probe=args.probe, on_collapse=args.on_collapse,
        )
        from lightning.fabric.utilities.rank_zero import rank_zero_only

        if rank_zero_only.rank == 0:  # DDP processes launched by Lightning run this command too
            from .train.auto import describe

            summary = describe(run)
            if summary:
                print(summary)
            print(f"run folder: {run}")
    elif args.command == "evaluate":
        from .evaluation import format_table

        results = api.evaluate(args.run, args.train, args.test, protocols=args.protocol,
                               label_fractions=args.label_fractions, baseline=args.baseline, json_path=args.json,
                               seed=args.seed, finetune_steps=args.finetune_steps, encoding=args.encoding,
                               progress=print, label_minutes=args.label_minutes, save_finetuned=args.save_finetuned)
        print(format_table(results))
    elif args.command == "embed":
        written = api.embed_files(args.run, args.data, args.out, batch_size=args.batch_size, encoding=args.encoding,
                                  part_rows=args.part_rows, overwrite=args.overwrite, strict=args.strict,
                                  progress=not args.no_progress)
        for label, path in written.items():
            print(f"{label}: {path}")
    elif args.command == "transcribe":
        for path, text in api.transcribe(args.model, args.audio, out=args.out):
            print(f"{path}\t{text}")
    elif args.command == "report":
        print(f"report: {api.report(args.run)}")
    elif args.command == "inspect":
        from .inspection import summary_lines

        findings = api.inspect(args.data, run=args.run, against=args.against, modality=args.modality,
                               json_path=args.json, write_clean=args.write_clean, threshold=args.threshold,
                               outlier_k=args.outlier_k, max_outliers=args.max_outliers, block=args.block,
                               encoding=args.encoding, batch_size=args.batch_size)
        print("\n".join(summary_lines(findings)))
    elif args.command == "shard":
        done = api.shard(args.data, args.out, shard_size=args.shard_size, modality=args.modality,
                         encoding=args.encoding, progress=not args.no_progress)
        labels = f", {len(done['classes'])} classes" if done["classes"] else ""
        print(f"wrote {done['samples']} samples into {done['shards']} shard(s){labels}: {done['folder']}")
    elif args.command == "export":
        print(f"exported: {api.export(args.run, args.out, format=args.format)}")
    elif args.command == "translate":
        lines = api.translate(args.model, args.input, out=args.out, num_beams=args.num_beams)
        print(f"translated {len(lines)} lines: {args.out}" if args.out else "\n".join(lines))
    elif args.command == "demo":
        from .demo import run_demo

        run_demo(args.out, method=args.method, epochs=args.epochs)


def _print_methods(modality: str | None, as_json: bool) -> None:
    from .registry import list_methods

    infos = list_methods(modality)
    if as_json:
        print(json.dumps([i.to_dict() for i in infos], indent=2))
    else:
        width = max((len(i.name) for i in infos), default=0)
        for i in infos:
            print(f"{i.name:<{width}}  {i.family.value:<18} {','.join(sorted(i.modalities)):<10} {i.paper}")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _quiet_libraries(args.verbose)
    try:
        _run(args)
    except SelfSupError as exc:
        print(f"selfsup: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("selfsup: interrupted; the last checkpoint is kept, run the same command to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader left (`selfsup methods | head -3`): nothing more to say
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (the interpreter flushes it at exit)
        return 0
    return 0


def run() -> None:
    """The `selfsup` program: :func:`main`, then exit without tearing every imported module down.

    After torch and Lightning are imported, Python's own shutdown (freeing thousands of modules) takes
    ≈ 1.3 s of CPU on a 2-core machine, longer than a short run's steps. The command's files are closed by
    then, so this runs the exit handlers a normal exit runs (logging, temporary files, multiprocessing)
    and leaves; it exits normally while another non-daemon thread is still running, or under a profiler,
    tracer or debugger (``python -m cProfile -m selfsup.cli`` still writes its profile).
    """
    code = main()
    others = any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread())
    if others or sys.getprofile() is not None or sys.gettrace() is not None:
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`selfsup methods | head -1`) or stream
            pass
    os._exit(code)


if __name__ == "__main__":
    run()
