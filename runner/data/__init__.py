"""Datasets (`dataset`) and batched augmentation."""
