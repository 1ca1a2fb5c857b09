"""Hand detection for images without boxes: MediaPipe Hands (:mod:`.mediapipe_hands`), the boxes it gives, and
their tracking through a video."""
