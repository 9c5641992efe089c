"""The scheduled reviews, each in one place, and the review incidents they open.

``incidents`` holds the review incidents (what a review found that needs the ops team).
"""
