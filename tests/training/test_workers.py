"""A process's place in a cluster (TF_CONFIG), and the local cluster command's own
logic (ports, TF_CONFIGs, restarts, log streaming) with stand-in workers: no
TensorFlow cluster here (tests/training/test_multi_worker.py trains one)."""
import io
import json
import re
import sys
import threading

import pytest
import tensorflow as tf

from keras_ssl import cluster
from keras_ssl.config import ConfigError
from keras_ssl.training.errors import PeerLost, peer_lost
from keras_ssl.training.workers import Role, read_tf_config, role, wants_multi_worker


def env(doc) -> dict:
    return {"TF_CONFIG": doc if isinstance(doc, str) else json.dumps(doc)}


TWO = {"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": {"type": "worker", "index": 1}}


def test_no_tf_config_is_one_process():
    assert read_tf_config({}) is None and read_tf_config({"TF_CONFIG": "  "}) is None
    assert role({}) == Role() and role({}).is_chief and role({}).name == "single"


def test_worker_zero_is_the_chief_without_a_chief_task():
    workers = [role(env({**TWO, "task": {"type": "worker", "index": i}})) for i in (0, 1)]
    assert [w.is_chief for w in workers] == [True, False]
    assert [w.name for w in workers] == ["worker0", "worker1"]
    assert {w.num_workers for w in workers} == {2}


def test_the_chief_task_is_the_chief_when_there_is_one():
    doc = {"cluster": {"chief": ["h:1"], "worker": ["h:2", "h:3"]}}
    chief = role(env({**doc, "task": {"type": "chief", "index": 0}}))
    worker0 = role(env({**doc, "task": {"type": "worker", "index": 0}}))
    assert chief.is_chief and not worker0.is_chief
    assert chief.num_workers == worker0.num_workers == 3


@pytest.mark.parametrize("doc, names", [
    ("{not json", "TF_CONFIG is not JSON"),
    ("[1, 2]", "TF_CONFIG must be a JSON object"),
    ({"task": {"type": "worker", "index": 0}}, "TF_CONFIG.cluster"),
    ({"cluster": {"worker": ["127.0.0.1"]}, "task": {"type": "worker", "index": 0}}, "TF_CONFIG.cluster.worker"),
    ({"cluster": TWO["cluster"]}, "TF_CONFIG.task must be"),
    ({**TWO, "task": {"type": "chief", "index": 0}}, "TF_CONFIG.task.type 'chief' is not a task type"),
    ({**TWO, "task": {"type": "worker", "index": 2}}, "TF_CONFIG.task.index must be 0..1"),
    ({**TWO, "task": {"type": "worker", "index": "0"}}, "TF_CONFIG.task.index"),
    ({"cluster": {"ps": ["h:1"], "worker": ["h:2"]}, "task": {"type": "ps", "index": 0}}, "'chief' and 'worker'"),
    ({"cluster": {"chief": ["h:1", "h:2"]}, "task": {"type": "chief", "index": 0}}, "TF_CONFIG.cluster.chief"),
])
def test_a_tf_config_tensorflow_would_misread_is_refused_naming_the_field(doc, names):
    with pytest.raises(ConfigError, match=names.replace(".", r"\.").replace("(", r"\(")):
        read_tf_config(env(doc))


def test_auto_means_multi_worker_only_with_several_training_tasks():
    one = {"cluster": {"worker": ["h:1"]}, "task": {"type": "worker", "index": 0}}
    assert wants_multi_worker("auto", env(TWO))
    assert not wants_multi_worker("auto", env(one))
    assert not wants_multi_worker("auto", {})
    assert not wants_multi_worker("default", env(TWO)) and not wants_multi_worker("mirrored", env(TWO))
    assert wants_multi_worker("multi_worker", {})      # TensorFlow then reads TF_CONFIG itself


def test_the_local_cluster_gives_each_worker_its_index_of_one_cluster():
    ports = cluster.free_ports(3)
    assert len(set(ports)) == 3
    docs = [json.loads(c) for c in cluster.tf_configs(ports)]
    assert [d["task"] for d in docs] == [{"type": "worker", "index": i} for i in range(3)]
    assert all(d["cluster"] == {"worker": [f"127.0.0.1:{p}" for p in ports]} for d in docs)
    roles = [role({"TF_CONFIG": c}) for c in cluster.tf_configs(ports)]
    assert [r.is_chief for r in roles] == [True, False, False]


@pytest.mark.parametrize("codes, restart", [
    ([0, 0], False), ([75, -9], True), ([0, 1], True), ([2, -9], False), ([-15, -15], True)])
def test_a_start_is_restarted_when_a_worker_failed_and_none_stopped_clearly(codes, restart):
    assert cluster.needs_restart(codes) is restart


def test_worker_output_is_prefixed_line_by_line_progress_redraws_included():
    out, lock = io.StringIO(), threading.Lock()
    pipe = io.BytesIO(b"first\n\r10%\r50%\rdone\npartial")
    cluster._stream(pipe, "[worker1] ", out, lock)
    assert out.getvalue() == "[worker1] first\n[worker1] 10%\r[worker1] 50%\r[worker1] done\n[worker1] partial\n"


#: A stand-in worker: ``<script> <state dir> <exit code of worker1 on start 1> <later>``.
#: Worker1 counts its own starts in the state directory (it always writes before it exits)
#: and exits with ``first`` on its first start, ``later`` after; worker0 exits 0 once
#: worker1 of the same start (the same cluster ports) has written. Worker0 may be killed
#: before it writes anything (worker1 failed first, on a loaded machine), so starts are
#: counted from the cluster's own log, not from worker0's files.
FAKE_WORKER = r"""
import json, os, sys, time
from pathlib import Path
state, first, later = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
tf_config = json.loads(os.environ["TF_CONFIG"])
me, start_id = tf_config["task"]["index"], tf_config["cluster"]["worker"][0].rsplit(":", 1)[1]
(state / f"w{me}-{start_id}").write_text(os.environ["TF_CONFIG"])
if me == 1:
    start = len(list(state.glob("w1-*")))
    print(f"start {start}", flush=True)
    sys.exit(first if start == 1 else later)
deadline = time.monotonic() + 30
while not (state / f"w1-{start_id}").exists() and time.monotonic() < deadline:
    time.sleep(0.01)
time.sleep(0.5)
"""


def fake_cluster(tmp_path, first, later, max_restarts):
    script = tmp_path / "worker.py"
    script.write_text(FAKE_WORKER)
    out = io.StringIO()
    code = cluster.run_cluster(2, [str(tmp_path), str(first), str(later)], max_restarts=max_restarts,
                               out=out, command=(sys.executable, str(script)))
    log = out.getvalue()
    starts = len(re.findall(r"start \d+: 2 worker\(s\)", log))
    return code, starts, log


def test_a_failed_worker_restarts_the_whole_cluster(tmp_path):
    code, starts, log = fake_cluster(tmp_path, 75, 0, max_restarts=2)
    assert (code, starts) == (0, 2)
    assert "worker1 exited with exit code 75" in log and "restart 1 of 2" in log
    assert "[worker1] start 1" in log and "[worker1] start 2" in log
    # Each start a new cluster: new ports, the same indices.
    seen = [json.loads(f.read_text()) for f in tmp_path.glob("w[01]-*")]
    assert len({d["cluster"]["worker"][0] for d in seen}) == 2
    assert {d["task"]["index"] for d in seen} == {0, 1}


def test_restarts_stop_when_used_up(tmp_path):
    code, starts, log = fake_cluster(tmp_path, 75, 75, max_restarts=1)
    assert code != 0 and starts == 2 and "--max-restarts 1 is used up" in log


def test_a_clear_stop_is_not_restarted(tmp_path):
    code, starts, log = fake_cluster(tmp_path, 2, 0, max_restarts=3)
    assert (code, starts) == (2, 1) and "restart" not in log.replace("--max-restarts", "")


def test_the_cluster_command_wants_the_train_arguments():
    with pytest.raises(SystemExit) as e:
        cluster.main(["--workers", "2"])
    assert e.value.code == 2
    with pytest.raises(SystemExit):
        cluster.main(["--workers", "0", "--", "--config", "x.json"])


def test_a_lost_peer_is_named_with_the_transport_reason_and_the_checkpoint():
    error = tf.errors.UnavailableError(None, None, 'Collective ops is aborted by: recvmsg:Connection reset by '
                                                   'peer\nAdditional GRPC error information: ...')
    lost = peer_lost(255, error, "/runs/x/checkpoints/ckpt-200")
    assert isinstance(lost, PeerLost) and lost.exit_code == 75
    assert str(lost) == ("another worker of the cluster stopped during pretraining after step 255 "
                         "(UnavailableError: recvmsg:Connection reset by peer); start every worker again "
                         "to resume from /runs/x/checkpoints/ckpt-200")
    grpc = tf.errors.UnavailableError(None, None, 'failed {grpc_message:"Socket closed", grpc_status:14}')
    assert "(UnavailableError: Socket closed)" in str(peer_lost(3, grpc, None))
    assert "from the start (no checkpoint yet)" in str(peer_lost(3, grpc, None))
