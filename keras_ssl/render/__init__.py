"""Offline renderer of car-like drives (KITTI odometry and TUM RGB-D layouts) and of a
labeled scene-recognition set, textured with the images scikit-image ships
(``python -m keras_ssl.render``; docs/render.md)."""
