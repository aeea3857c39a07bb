"""Pipelines: prompt (and optionally a first image or a video to continue) -> frames."""

from vidora.pipelines.text_to_video import GenerationDefaults, TextToVideoPipeline, VideoOutput

__all__ = ["GenerationDefaults", "TextToVideoPipeline", "VideoOutput"]
