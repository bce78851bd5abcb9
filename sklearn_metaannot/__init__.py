"""Meta-learned representations for learning from multiple noisy annotators."""
# SPDX-License-Identifier: BSD-3-Clause

from ._classifier import MetaAnnotatorClassifier, MissingClassWarning
from .adapt._representation import (
    INPUT_SPACES,
    RepresentationChoice,
    choose_representation,
    crowd_agreement_score,
    held_out_agreement,
)
from .adapt._unlabelled import UnlabelledChoice
from .aggregation import DawidSkene, MajorityVote
from .crowd._annotators import ANNOTATOR_TYPES, AnnotatorSimulator, simulate_annotators
from .crowd._labels import CrowdLabelMatrix
from .episodes import Episode, EpisodeSampler
from .io._persistence import load, save
from .meta._episodic import EpisodeDataset, EpisodicEM, FittedEncoder, torch_threads
from .meta._learner import MetaEncoder, MetaLearner, MetaLearningWarning

__version__ = "0.1.0"

__all__ = [
    "ANNOTATOR_TYPES",
    "INPUT_SPACES",
    "AnnotatorSimulator",
    "CrowdLabelMatrix",
    "DawidSkene",
    "Episode",
    "EpisodeDataset",
    "EpisodeSampler",
    "EpisodicEM",
    "FittedEncoder",
    "MajorityVote",
    "MetaAnnotatorClassifier",
    "MetaEncoder",
    "MetaLearner",
    "MetaLearningWarning",
    "MissingClassWarning",
    "RepresentationChoice",
    "UnlabelledChoice",
    "choose_representation",
    "crowd_agreement_score",
    "held_out_agreement",
    "load",
    "save",
    "simulate_annotators",
    "torch_threads",
]
