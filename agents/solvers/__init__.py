"""Heuristic solvers: each reads the pixels and the question text of one kind of question."""
