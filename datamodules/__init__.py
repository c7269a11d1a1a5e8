"""LightningDataModules for the five fine-grained datasets, image folders and the built-in synthetic
set."""

from datamodules.base import FineGrainedDataModule
from datamodules.cub import CUB200DataModule
from datamodules.fgvc_aircraft import FGVCAircraftDataModule
from datamodules.flowers102 import Flowers102DataModule
from datamodules.food101 import Food101DataModule
from datamodules.image_folder import ImageFolderDataModule
from datamodules.stanford_cars import StanfordCarsDataModule
from datamodules.synthetic import SyntheticDataModule
from datamodules.transforms import IMAGENET_MEAN, IMAGENET_STD

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "CUB200DataModule",
    "FGVCAircraftDataModule",
    "FineGrainedDataModule",
    "Flowers102DataModule",
    "Food101DataModule",
    "ImageFolderDataModule",
    "StanfordCarsDataModule",
    "SyntheticDataModule",
]
