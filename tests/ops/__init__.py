"""Tests of the operations parts: images, compose, deploy, alerts, on real engines."""
