"""Fine-tune a classifier.

``python train.py fit --config configs/experiments/cub200_vgg16_bn.yaml \
--data.root /data/CUB_200_2011``
(also ``validate`` and ``test``; ``--ckpt_path last`` resumes a fit).
"""

from cli.usage import train as main

if __name__ == "__main__":
    main()
