"""``python -m engine`` runs the ``fireside`` command."""
import sys

from .cli import main

sys.exit(main())
