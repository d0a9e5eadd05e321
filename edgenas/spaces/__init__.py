"""Search spaces behind one interface (``SearchSpace``), found by name with ``create_space``."""

from edgenas.spaces.base import ChoicePoint, SearchSpace, create_space, list_spaces, space_class
from edgenas.spaces.genotype import Genotype, load_genotype

__all__ = ["ChoicePoint", "Genotype", "SearchSpace", "create_space", "list_spaces", "load_genotype", "space_class"]
