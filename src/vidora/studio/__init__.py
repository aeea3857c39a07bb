"""The browser studio that `vidora serve` mounts at /studio: make, browse, remix and extend
videos through the server's own services (session.py), rendered by Gradio (app.py).

`vidora.studio.app` imports gradio; nothing else here does, so the server imports it only
when the studio is switched on (`VIDORA_STUDIO`, on by default).
"""
