"""``python -m flows``: serve every llmedic deployment from this process (what ``llmedic up`` runs)."""

from __future__ import annotations

from flows.registry import serve_all

if __name__ == "__main__":
    serve_all()
