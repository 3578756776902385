import unittest

import numpy

import backend
import model


class ModelTest(unittest.TestCase):
    def test_learns_a_separable_toy_problem(self):
        b = backend.Backend()  # the numpy backend: the tests run anywhere
        rng = numpy.random.default_rng(0)
        x = rng.standard_normal((400, 8)).astype("float32")
        y = (x[:, 0] > 0).astype("int64")
        predict = model.train(b, b.asarray(x), b.labels(y), 2)
        got = numpy.asarray(b.to_list(predict(b.asarray(x))))
        self.assertGreater((got == y).mean(), 0.8)


if __name__ == "__main__":
    unittest.main()
