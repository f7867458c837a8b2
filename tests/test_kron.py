import pytest
import torch

from vmtlib.kron import kron, kron_sum, kron_sum_matmul


def test_kron_equals_torch_kron() -> None:
    a, b = torch.randn(3, 4), torch.randn(5, 2)
    torch.testing.assert_close(kron(a, b), torch.kron(a, b))


def test_batched_kron_equals_torch_kron_per_item() -> None:
    a, b = torch.randn(6, 3, 3), torch.randn(6, 4, 2)
    out = kron(a, b)
    for i in range(6):
        torch.testing.assert_close(out[i], torch.kron(a[i], b[i]))


def test_kron_sum_is_the_sum_of_products() -> None:
    a, b = torch.randn(4, 3, 3), torch.randn(4, 32, 8)
    expected = sum(torch.kron(a[i], b[i]) for i in range(4))
    torch.testing.assert_close(kron_sum(a, b), expected)


def test_structured_matmul_equals_materialised() -> None:
    a, b = torch.randn(3, 3, 3), torch.randn(3, 32, 8)
    x = torch.randn(2, 5, 96)
    torch.testing.assert_close(kron_sum_matmul(x, a, b), x @ kron_sum(a, b), rtol=1e-4, atol=1e-4)


def test_mixed_product_property() -> None:
    # (A (x) B)(C (x) D) = (AC) (x) (BD)
    a, b, c, d = torch.randn(2, 3), torch.randn(4, 5), torch.randn(3, 2), torch.randn(5, 3)
    torch.testing.assert_close(kron(a, b) @ kron(c, d), kron(a @ c, b @ d), rtol=1e-4, atol=1e-4)


def test_bad_factors_are_rejected() -> None:
    with pytest.raises(ValueError, match="same n"):
        kron_sum(torch.randn(2, 3, 3), torch.randn(3, 4, 4))
    with pytest.raises(ValueError, match="features"):
        kron_sum_matmul(torch.randn(5, 10), torch.randn(2, 3, 3), torch.randn(2, 4, 4))
