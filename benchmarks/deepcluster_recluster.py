"""DeepCluster's reclustering on this machine: the seconds of each part, and the
k-means implementations compared on the same points.

    python benchmarks/deepcluster_recluster.py [--config configs/mnist_deepcluster.json] [--rounds 2]

The config's pretraining images and encoder (freshly initialised: the first round's
features; a trained encoder's take the same time), then per round: the features pass
(float32, inference mode), PCA with whitening and L2 normalisation to ``pca_dim``, and
k-means into ``clusters`` with each implementation: scikit-learn ``KMeans`` (Lloyd,
random init, as the method runs it) in 1 and 2 threads, ``KMeans`` with k-means++
init, and ``MiniBatchKMeans``; the inertia of each on the same points (lower is
better) and whether 1 and 2 threads give the same labels. Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "mnist_deepcluster.json"))
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args(argv)

    import numpy as np
    from sklearn.cluster import KMeans, MiniBatchKMeans
    from threadpoolctl import threadpool_limits

    from keras_ssl import registry
    from keras_ssl.config import load_config
    from keras_ssl.data import load_pretrain
    from keras_ssl.encoders import build_encoder
    from keras_ssl.methods.base import DatasetFacts
    from keras_ssl.methods.deepcluster import reduce_features, run_kmeans

    cfg = load_config(args.config)
    p = cfg.method.params
    images = load_pretrain(cfg.data).images
    shape = images.shape[1:]
    encoder = build_encoder(cfg.encoder, shape)
    pretext = registry.build("pretext", cfg.pretext, shape)
    method = registry.build("method", cfg.method, encoder, pretext, facts=DatasetFacts(len(images)))
    rows = []
    for r in range(args.rounds):
        t0 = time.perf_counter()
        feats = method.features(encoder, images)
        t1 = time.perf_counter()
        x = reduce_features(feats, p.pca_dim, p.whiten)
        t2 = time.perf_counter()
        row = {"round": r, "features": t1 - t0, "pca": t2 - t1}
        labels = {}
        for name, make, threads in [
                ("kmeans_random_1thread", lambda: KMeans(p.clusters, init="random", n_init=1,
                                                         max_iter=p.kmeans_iters, random_state=r), 1),
                ("kmeans_random_2threads", lambda: KMeans(p.clusters, init="random", n_init=1,
                                                          max_iter=p.kmeans_iters, random_state=r), 2),
                ("kmeans_pp_1thread", lambda: KMeans(p.clusters, init="k-means++", n_init=1,
                                                     max_iter=p.kmeans_iters, random_state=r), 1),
                ("minibatch_1thread", lambda: MiniBatchKMeans(p.clusters, init="random", n_init=1,
                                                              max_iter=p.kmeans_iters, random_state=r,
                                                              batch_size=4096), 1)]:
            with threadpool_limits(threads):
                t = time.perf_counter()
                km = make().fit(x)
                lab = km.predict(x)
                row[name] = time.perf_counter() - t
            labels[name] = lab
            row[name + "_inertia"] = float(((x - km.cluster_centers_[lab]) ** 2).sum())
        t = time.perf_counter()
        run_kmeans(x, p.clusters, r, p.kmeans_iters, p.kmeans)
        row["method_kmeans"] = time.perf_counter() - t
        row["threads_agree"] = bool(np.array_equal(labels["kmeans_random_1thread"],
                                                   labels["kmeans_random_2threads"]))
        rows.append(row)
    print(f"{len(images)} images, features {feats.shape[1]}-d -> PCA {x.shape[1]}, k = {p.clusters}, "
          f"{p.kmeans_iters} iterations (seconds)\n")
    keys = [k for k in rows[0] if k != "round"]
    print("| " + " | ".join(["round", *keys]) + " |")
    print("|" + "---|" * (len(keys) + 1))
    for row in rows:
        print("| " + " | ".join(str(row["round"]) if k == "round" else
                                (str(row[k]) if isinstance(row[k], bool) else f"{row[k]:.2f}")
                                for k in ["round", *keys]) + " |")


if __name__ == "__main__":
    main()
