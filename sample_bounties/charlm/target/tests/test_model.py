"""Unit tests of the model (the bounty's constraints.test_command runs them).

Run from target/: python3 -m unittest discover -s tests
"""

import time
import unittest

import numpy as np

import model

TEXT = b"And God said, Let there be light: and there was light.\n" * 20


class VocabularyTests(unittest.TestCase):
    def test_unseen_bytes_share_the_unknown_mass_and_the_total_is_one(self):
        vocab = model.Vocabulary(TEXT)
        p = np.full(vocab.size, 1.0 / vocab.size)
        out = vocab.to_bytes(p)
        self.assertEqual(out.shape, (256,))
        self.assertAlmostEqual(float(out.sum()), 1.0, places=5)
        self.assertTrue((out > 0).all())
        self.assertGreater(out[ord("a")], out[ord("Q")])  # seen vs one of many unseen

    def test_encode_maps_unknown_bytes_to_unk(self):
        vocab = model.Vocabulary(TEXT)
        ids = vocab.encode(b"A\xff")
        self.assertNotEqual(ids[0], vocab.unk)
        self.assertEqual(ids[1], vocab.unk)


class GradientTests(unittest.TestCase):
    def test_backprop_matches_finite_differences(self):
        rng = np.random.default_rng(0)
        net = model.MLP(7, rng)
        for k in net.params:
            net.params[k] = net.params[k].astype(np.float64)
        ctx = rng.integers(0, 7, size=(5, model.CONTEXT))
        target = rng.integers(0, 7, size=5)

        def loss() -> float:
            _, _, probs = net.forward(ctx)
            return float(-np.log(probs[np.arange(5), target]).mean())

        captured = {}
        saved = model.OPTIMIZER, model.LEARNING_RATE
        model.OPTIMIZER, model.LEARNING_RATE = "sgd", 1.0
        before = {k: v.copy() for k, v in net.params.items()}
        try:
            net.train_step(ctx, target)
        finally:
            model.OPTIMIZER, model.LEARNING_RATE = saved
        for k in before:
            captured[k] = before[k] - net.params[k]  # with lr 1, the step is the gradient
        net.params = before
        eps = 1e-6
        for k in ("w1", "w2", "emb", "b1"):
            idx = tuple(int(i) for i in np.argwhere(np.abs(captured[k]) > 0)[0])
            net.params[k][idx] += eps
            up = loss()
            net.params[k][idx] -= 2 * eps
            down = loss()
            net.params[k][idx] += eps
            self.assertAlmostEqual((up - down) / (2 * eps), captured[k][idx], places=5, msg=k)


class TrainingTests(unittest.TestCase):
    def test_training_beats_uniform_and_predictions_are_distributions(self):
        predictor = model.train(TEXT, time.process_time() + 1.0, log=lambda _msg: None)
        bits = 0.0
        for i in range(100):
            p = predictor.predict(TEXT[:i])
            self.assertEqual(p.shape, (256,))
            self.assertAlmostEqual(float(p.sum()), 1.0, places=4)
            bits += -np.log2(p[TEXT[i]])
        self.assertLess(bits / 100, 8.0 - 2.0)  # uniform over 256 bytes is 8 bits


if __name__ == "__main__":
    unittest.main()
