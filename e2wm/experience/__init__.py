"""Experiences in the world model: goals, the MCTS planner, random exploration, episodes, collection."""
