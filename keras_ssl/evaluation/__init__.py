"""Evaluation of a pretrained encoder with few labels (:mod:`.protocols`), the
comparison of finished runs (:mod:`.compare`) and the published figures we
compare against (:mod:`.reference`).
"""
