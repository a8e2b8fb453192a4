"""``skal label`` end to end through a pseudo-terminal."""

import csv
import json
import os
import re
import signal
import subprocess
import sys

import numpy as np
import pexpect
import pytest

from skal._cli import main
from skal.labeling import Journal, LabelingSession
from skal.labeling._cli import load_pool, text_preview

TIMEOUT = 90


@pytest.fixture
def pool_csv(tmp_path):
    rng = np.random.RandomState(0)
    path = tmp_path / "pool.csv"
    lines = ["id,x1,x2,note"] + [
        f"p{i},{rng.normal():.3f},{rng.normal():.3f},row {i}" for i in range(30)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def spawn(*args):
    child = pexpect.spawn(
        sys.executable, ["-m", "skal._cli", "label", *map(str, args)], encoding="utf-8",
        timeout=TIMEOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    return child


def shown(child):
    """Wait for the next prompt; return the id of the sample shown."""
    child.expect(r"--- sample (\S+) ")
    sample_id = child.match.group(1)
    child.expect("label> ")
    return sample_id


def journal_answers(path):
    with Journal(path) as journal:
        assert journal.integrity_check() == "ok"
        return {a["sample_id"]: a for a in journal.answers()}


@pytest.mark.slow  # a whole terminal session in a pseudo-terminal, twice
def test_label_skip_undo_quit_and_resume(tmp_path, pool_csv):
    journal = tmp_path / "j.sqlite"
    child = spawn(pool_csv, "--journal", journal, "--classes", "cat,dog", "--seed", "0",
                  "--annotator", "ann")
    child.expect(r"30 samples, 0 labelled")
    child.expect(r"keys: 1=cat  2=dog  s=skip  u=undo  q=quit")
    first = shown(child)
    child.sendline("1")
    child.expect(f"saved {first} = cat")
    second = shown(child)
    child.sendline("s")
    child.expect(f"skipped {second}")
    shown(child)
    child.sendline("u")
    child.expect(f"undone: {second}")
    assert shown(child) == second
    child.sendline("2")
    child.expect(f"saved {second} = dog")
    third = shown(child)
    child.sendline("7")
    child.expect("unknown key '7'")
    assert shown(child) == third
    child.sendline("q")
    child.expect("all saved")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    answers = journal_answers(journal)
    assert {s: a["label"] for s, a in answers.items()} == {first: "cat", second: "dog"}
    assert answers[first]["annotator"] == "ann"
    assert answers[first]["strategy"] == "random" and answers[first]["round"] == 0

    # Without --resume an existing journal is refused: one line, exit status 2.
    child = spawn(pool_csv, "--journal", journal, "--classes", "cat,dog")
    child.expect("skal label: error: .*exists; pass --resume")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 2

    child = spawn(pool_csv, "--journal", journal, "--classes", "cat,dog", "--resume",
                  "--annotator", "ann")
    child.expect("30 samples, 2 labelled")
    assert shown(child) == third  # the unanswered rest of the interrupted batch
    child.sendline("2")
    child.expect(f"saved {third} = dog \\(3 labelled\\)")
    shown(child)
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert len(journal_answers(journal)) == 3


def test_sigkill_of_the_terminal_session_loses_no_acknowledged_label(tmp_path, pool_csv):
    journal = tmp_path / "j.sqlite"
    child = spawn(pool_csv, "--journal", journal, "--classes", "cat,dog", "--seed", "1",
                  "--batch-size", "3", "--query-ahead")
    acked = {}
    for i in range(8):
        shown(child)
        child.sendline("1" if i % 3 else "2")
        child.expect(r"saved (\S+) = (\w+)")
        acked[child.match.group(1)] = child.match.group(2)
    os.kill(child.pid, signal.SIGKILL)
    child.close(force=True)
    answers = journal_answers(journal)
    assert {s: a["label"] for s, a in answers.items()} == acked
    child = spawn(pool_csv, "--journal", journal, "--classes", "cat,dog", "--resume")
    child.expect("30 samples, 8 labelled")
    assert shown(child) not in acked
    child.sendline("q")
    child.expect(pexpect.EOF)


@pytest.mark.slow  # a terminal session in a pseudo-terminal
def test_a_single_keypress_answers_without_enter(tmp_path, pool_csv):
    journal = tmp_path / "j.sqlite"
    child = spawn(pool_csv, "--journal", journal, "--classes", "cat,dog", "--seed", "0")
    first = shown(child)
    child.send("2")  # no newline: the terminal is in cbreak mode while it waits
    child.expect(f"saved {first} = dog")
    second = shown(child)
    child.send("s")
    child.expect(f"skipped {second}")
    shown(child)
    child.sendeof()  # Ctrl-D at a keypress quits, everything saved
    child.expect("all saved")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    answers = journal_answers(journal)
    assert answers[first]["label"] == "dog" and answers[second]["skipped"]


@pytest.mark.slow  # a terminal session in a pseudo-terminal
def test_line_mode_waits_for_enter(tmp_path, pool_csv):
    journal = tmp_path / "j.sqlite"
    child = spawn(pool_csv, "--journal", journal, "--classes", "cat,dog", "--line-mode")
    first = shown(child)
    child.send("1")
    with pytest.raises(pexpect.TIMEOUT):  # a key alone is not an answer yet
        child.expect("saved", timeout=1)
    child.send("\r")
    child.expect(f"saved {first} = cat")
    shown(child)
    child.sendline("q")
    child.expect(pexpect.EOF)


@pytest.mark.slow  # a terminal session in a pseudo-terminal
def test_image_pool_shows_a_text_preview(tmp_path):
    images = np.zeros((12, 8, 8))
    images[:, 2:6, 3:5] = 1.0  # a bright bar in the middle
    path = tmp_path / "images.npy"
    np.save(path, images)
    journal = tmp_path / "j.sqlite"
    child = spawn(path, "--journal", journal, "--classes", "bar,blank", "--keys", "bn")
    child.expect(r"--- sample (\d+) ")
    child.expect(r"\|\s+@@@@\s+\|")
    child.expect("label> ")
    child.sendline("b")
    child.expect(r"saved \d+ = bar")
    shown(child)
    child.sendline("q")
    child.expect(pexpect.EOF)
    assert [a["label"] for a in journal_answers(journal).values()] == ["bar"]


def test_text_preview_downsamples_large_images():
    image = np.linspace(0, 1, 64 * 128).reshape(64, 128)
    lines = text_preview(image).splitlines()
    assert len(lines) == 16 and all(len(line) == 2 * 32 + 4 for line in lines)
    assert lines[0].strip("| ").startswith("") and "@" in lines[-1]


@pytest.mark.slow
def test_bad_pools_and_options_are_one_line_errors(tmp_path, pool_csv):
    cases = [
        ([tmp_path / "missing.csv", "--classes", "a,b"], "No pool file"),
        ([pool_csv, "--classes", "a,b", "--keys", "1s"], "reserved"),
        ([pool_csv, "--classes", "a,b", "--resume"], "no journal"),
    ]
    empty = tmp_path / "empty.csv"
    empty.write_text("id,x\n")
    cases.append(([empty, "--classes", "a,b"], "pool is empty"))
    for args, message in cases:
        child = spawn(*args, "--journal", tmp_path / "j.sqlite")
        child.expect(f"skal label: error: .*{re.escape(message)}")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 2


def skal_label(*args):
    """Run ``skal label`` to the end with no terminal; return (status, stdout, stderr)."""
    done = subprocess.run(
        [sys.executable, "-m", "skal._cli", "label", *map(str, args)], capture_output=True,
        text=True, stdin=subprocess.DEVNULL, timeout=TIMEOUT,
    )
    return done.returncode, done.stdout, done.stderr


def answer(child, keys):
    """Answer the samples shown with ``keys[sample_id]`` until ``keys["quit"]`` samples were
    seen; return the ids in the order shown."""
    seen = []
    while True:
        sample_id = shown(child)
        seen.append(sample_id)
        if len(seen) > keys["quit"]:
            child.sendline("q")
            child.expect(pexpect.EOF)
            child.close()
            assert child.exitstatus == 0
            return seen
        child.sendline(keys[sample_id])
        child.expect(r"(saved|skipped) ")


@pytest.mark.slow  # five CLI subprocesses; session.export's logic is covered in test_labeling
def test_export_writes_the_final_labels(tmp_path, pool_csv):
    journal = tmp_path / "j.sqlite"
    common = [pool_csv, "--journal", journal, "--classes", "cat,dog"]
    child = spawn(*common, "--seed", "0", "--annotator", "ann")
    child.expect(re.escape("Samples are picked by MarginSampling on "
                           "LogisticRegression(max_iter=1000) (at random until two classes "
                           "are labelled)"))
    a = shown(child)
    child.sendline("1")
    b = shown(child)
    child.sendline("1")  # cat, then undone and labelled dog
    c = shown(child)
    child.sendline("u")
    child.expect(f"undone: {b}")
    assert shown(child) == b
    child.sendline("2")
    assert shown(child) == c
    child.sendline("2")
    d = shown(child)
    child.sendline("s")  # a skip is no label: d is not exported
    shown(child)
    child.sendline("q")
    child.expect(pexpect.EOF)
    child.close()
    # Bob is asked for ann's labelled samples first and disagrees on b.
    child = spawn(*common, "--resume", "--annotator", "bob", "--labels-per-sample", "2")
    assert answer(child, {a: "1", b: "1", c: "2", "quit": 3})[:3] == [a, b, c]

    status, out, err = skal_label("--journal", journal, "--export", tmp_path / "tie.csv")
    assert status == 0, err
    assert "Wrote the labels of 3 samples" in out
    with open(tmp_path / "tie.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    X, ids, _ = load_pool(str(pool_csv))
    with LabelingSession(None, X, journal, classes=["cat", "dog"], sample_ids=ids) as session:
        trained_on = session.labels()  # b: a tie of two, broken by the session's seed
        n_rounds = len(session.history_)
    assert rows == [["sample_id", "label", "n_annotators"], [a, "cat", "2"],
                    [b, trained_on[b], "2"], [c, "dog", "2"]]

    # Carol skips a and sides with ann on b: two votes to one.
    child = spawn(*common, "--resume", "--annotator", "carol", "--labels-per-sample", "3")
    assert answer(child, {a: "s", b: "2", "quit": 2}) == [a, b, c]
    status, out, err = skal_label(*common, "--export", tmp_path / "labels.json")
    assert status == 0, err
    with open(tmp_path / "labels.json") as handle:
        assert json.load(handle) == [
            {"sample_id": a, "label": "cat", "n_annotators": 2},
            {"sample_id": b, "label": "dog", "n_annotators": 3},
            {"sample_id": c, "label": "dog", "n_annotators": 2},
        ]
    assert d not in {row[0] for row in rows}
    with LabelingSession(None, X, journal, classes=["cat", "dog"], sample_ids=ids) as session:
        assert len(session.history_) == n_rounds + 1  # carol's round; exporting adds none


def test_export_errors_are_one_line(tmp_path, pool_csv, capsys):
    journal = tmp_path / "j.sqlite"
    cases = [
        (["--journal", journal, "--export", tmp_path / "out.csv"], "no journal"),
        (["--journal", journal, "--export", tmp_path / "out.txt"], "*.csv or *.json"),
        ([pool_csv, "--journal", journal, "--export", tmp_path / "o.csv"], "or neither"),
        (["--journal", journal], "give the pool and --classes"),
    ]
    for args, message in cases:
        assert main(["label", *map(str, args)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("skal label: error: ") and message in err, err
    assert not os.path.exists(journal)  # an export never creates a journal


@pytest.mark.slow
def test_synthesised_samples_in_the_terminal_survive_quit_and_resume(tmp_path, capsys):
    pool = tmp_path / "pool.npy"
    np.save(pool, np.random.RandomState(0).normal(size=(40, 4)))
    journal = tmp_path / "j.sqlite"
    args = (pool, "--journal", journal, "--classes", "a,b", "--seed", "0", "--batch-size", "2",
            "--synthesize")
    child = spawn(*args)
    shown(child)
    child.sendline("1")
    shown(child)
    child.sendline("2")  # two classes: the next round is synthesised
    child.expect(r"--- sample (synth-[0-9a-f]{16}) \(GAAL, score")
    first = child.match.group(1)
    child.expect("label> ")
    child.sendline("1")
    child.expect(f"saved {first} = a")
    child.expect(r"--- sample (synth-[0-9a-f]{16}) ")
    second = child.match.group(1)
    child.expect("label> ")
    child.sendline("q")
    child.expect(pexpect.EOF)
    assert journal_answers(journal)[first]["label"] == "a"
    child = spawn(*args, "--resume")
    assert shown(child) == second  # its features come back from the journal
    child.sendline("2")
    child.expect(f"saved {second} = b \\(4 labelled\\)")
    child.sendline("q")
    child.close()
    with Journal(journal) as j:
        assert {sid for sid, _ in j.synthetic()} >= {first, second}
    assert main(["label", str(pool), "--journal", str(tmp_path / "w.sqlite"), "--classes",
                 "a,b", "--synthesize", "--web"]) == 2
    assert "--synthesize works in the terminal only" in capsys.readouterr().err
