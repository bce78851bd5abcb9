"""Meta-learned representations for learning from multiple noisy annotators."""
# SPDX-License-Identifier: BSD-3-Clause

from ._annotators import ANNOTATOR_TYPES, AnnotatorSimulator, simulate_annotators
from ._classifier import MetaAnnotatorClassifier, MissingClassWarning
from ._crowd_labels import CrowdLabelMatrix
from ._meta import FittedEncoder
from ._meta_learner import MetaEncoder, MetaLearner, MetaLearningWarning
from ._persistence import load, save
from ._representation import RepresentationChoice, crowd_agreement_score
from ._unlabelled import UnlabelledChoice
from .aggregation import DawidSkene, MajorityVote
from .episodes import Episode, EpisodeSampler

__version__ = "0.1.0"

__all__ = [
    "ANNOTATOR_TYPES",
    "AnnotatorSimulator",
    "CrowdLabelMatrix",
    "DawidSkene",
    "Episode",
    "EpisodeSampler",
    "FittedEncoder",
    "MajorityVote",
    "MetaAnnotatorClassifier",
    "MetaEncoder",
    "MetaLearner",
    "MetaLearningWarning",
    "MissingClassWarning",
    "RepresentationChoice",
    "UnlabelledChoice",
    "crowd_agreement_score",
    "load",
    "save",
    "simulate_annotators",
]
