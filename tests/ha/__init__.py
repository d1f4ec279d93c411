"""Tests of the Home Assistant integration, run against the real faceanon service."""
