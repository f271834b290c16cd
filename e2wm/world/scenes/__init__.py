"""Scene sources: procedurally generated homes, RobotHow programs with real VirtualHome graphs, and
folders of VirtualHome JSON graphs."""

from e2wm.world.scenes.generator import GENERATOR_VERSION, generate_scene, generate_scenes
from e2wm.world.scenes.robothow import (
    RobotHowProgram,
    RobotHowUnavailableError,
    cache_root,
    fetch_robothow,
    load_robothow,
    robothow_dir,
)
from e2wm.world.scenes.sources import graph_files, iter_scene_folder, scene_id

__all__ = [
    "GENERATOR_VERSION",
    "RobotHowProgram",
    "RobotHowUnavailableError",
    "cache_root",
    "fetch_robothow",
    "generate_scene",
    "generate_scenes",
    "graph_files",
    "iter_scene_folder",
    "load_robothow",
    "robothow_dir",
    "scene_id",
]
