import pytest
import torch
from torchvision.models import resnet50

from ipdscan.model.ipdnet import IPDConfig, IPDNet, srm_kernels

torch.set_num_threads(2)


def test_srm_kernels_are_the_simple_srm_summed_over_rgb():
    w = srm_kernels()
    assert w.shape == (3, 3, 5, 5)
    assert all(torch.equal(w[k, 0], w[k, c]) for k in range(3) for c in range(3))  # same kernel on R, G, B
    kb, kv, h2 = w[:, 0]
    assert kb[2, 2] == pytest.approx(-1.0) and kb[1, 2] == pytest.approx(0.5) and kb[1, 1] == pytest.approx(-0.25)
    assert kb[0].abs().sum() == 0 and kb[:, 0].abs().sum() == 0  # KB lives in the inner 3x3
    assert kv[2, 2] == pytest.approx(-1.0) and kv[0, 0] == pytest.approx(-1 / 12) and kv[1, 1] == pytest.approx(-0.5)
    assert h2[2, 1:4].tolist() == pytest.approx([0.5, -1.0, 0.5]) and h2.abs().sum() == pytest.approx(2.0)
    for k in (kb, kv, h2):  # high-pass: a flat image gives zero residual
        assert k.sum().abs() < 1e-6


def test_srm_filter_sums_the_kernel_over_channels():
    model = IPDNet(IPDConfig(input_size=64))
    x = torch.randn(1, 3, 16, 16)
    out = model.srm(x)
    expected = torch.nn.functional.conv2d(x.sum(1, keepdim=True), srm_kernels()[:, :1], padding=2)
    assert torch.allclose(out, expected, atol=1e-5)
    assert not any(p.requires_grad for p in model.srm.parameters())  # fixed, not learned


def test_dependency_matrix_equals_a_double_loop_over_patches():
    torch.manual_seed(0)
    model = IPDNet(IPDConfig(variant="layer2", input_size=32)).eval()  # 4x4 feature map: 16 patches
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        deps = model.forward_features(x)
        features = model.trunk(model.srm(x))
        q, k = model.dependency.query(features), model.dependency.key(features)
    b, c2, h, w = q.shape
    assert deps.shape == (2, h * w, h * w) and c2 == 256
    for n in range(b):
        for i in range(h * w):
            for j in range(h * w):
                expected = sum(q[n, c, i // w, i % w] * k[n, c, j // w, j % w] for c in range(c2))
                assert deps[n, i, j] == pytest.approx(float(expected), rel=1e-4, abs=1e-4)


def test_head_pools_the_transposed_matrix_per_patch():
    model = IPDNet(IPDConfig(variant="layer3", input_size=64)).eval()  # 4x4 map, one linear layer
    deps = torch.randn(3, 16, 16)
    pooled = deps.mean(dim=1)  # transposed row i holds column i of D; pooling averages it
    expected = model.head.classifier(pooled).squeeze(1)
    assert torch.allclose(model.forward_head(deps), expected, atol=1e-5)
    assert not torch.allclose(model.forward_head(deps), model.head.classifier(deps.mean(dim=2)).squeeze(1))


def trunk_params(variant):
    net = resnet50(weights=None)
    parts = [net.conv1, net.bn1, net.layer1, net.layer2, net.layer3, net.layer4]
    keep = parts[: 2 + ["layer1", "layer2", "layer3", "layer4"].index(variant) + 1]
    return sum(p.numel() for part in keep for p in part.parameters())


def torchvision_trunk_state(net, variant: str) -> dict:
    """torchvision ResNet-50's weights under ResNetTrunk's names: conv1/bn1 -> stem.0/1, layerN -> stages.N-1."""
    stages = ["layer1", "layer2", "layer3", "layer4"][: ["layer1", "layer2", "layer3", "layer4"].index(variant) + 1]
    state = {}
    for key, value in net.state_dict().items():
        head, _, rest = key.partition(".")
        if head in ("conv1", "bn1"):
            state[f"stem.{0 if head == 'conv1' else 1}.{rest}"] = value
        elif head in stages:
            state[f"stages.{stages.index(head)}.{rest}"] = value
    return state


@pytest.mark.parametrize("variant", ["layer2", "layer3", "layer4"])
def test_trunk_is_torchvisions_resnet50_cut_after_the_variant(variant):
    from ipdscan.model.ipdnet import ResNetTrunk
    torch.manual_seed(0)
    net = resnet50(weights=None).eval()
    trunk = ResNetTrunk(variant).eval()
    reference = torchvision_trunk_state(net, variant)
    assert {k: v.shape for k, v in trunk.state_dict().items()} == {k: v.shape for k, v in reference.items()}
    trunk.load_state_dict(reference)
    stages = [net.layer1, net.layer2, net.layer3, net.layer4][: len(trunk.stages)]
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = torch.nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, *stages)(x)
        assert torch.equal(trunk(x), expected)


def test_trunk_is_initialised_as_torchvision_does():
    from ipdscan.model.ipdnet import ResNetTrunk
    torch.manual_seed(0)
    trunk = ResNetTrunk("layer2")
    conv = trunk.stages[1][0].conv2  # 128 -> 128, 3x3: kaiming normal, fan_out, relu gain
    fan_out = conv.out_channels * 9
    assert conv.weight.std().item() == pytest.approx((2 / fan_out) ** 0.5, rel=0.05)
    assert abs(conv.weight.mean().item()) < 0.01
    bn = trunk.stages[1][0].bn2
    assert torch.equal(bn.weight, torch.ones_like(bn.weight)) and torch.equal(bn.bias, torch.zeros_like(bn.bias))


@pytest.mark.slow
def test_a_scan_does_not_import_torchvision(run_cli):
    """torchvision costs ~1 s of start-up (torch._dynamo, through torchvision.ops); only GPU decoding needs it."""
    code = "import sys, ipdscan.cli.commands; print('torchvision' in sys.modules)"
    run = run_cli.python("-c", code)
    assert run.returncode == 0 and run.stdout.strip() == "False", run.stderr


@pytest.mark.parametrize("variant,channels,side,linear_layers", [
    ("layer2", 512, 32, 2), ("layer3", 1024, 16, 1), ("layer4", 2048, 8, 1)])
def test_shapes_and_parameter_counts(variant, channels, side, linear_layers):
    model = IPDNet(IPDConfig(variant=variant)).eval()
    hw = side * side
    reducer = 2 * (channels * channels // 2 + channels // 2)
    head = hw * 256 + 256 + 256 + 1 if linear_layers == 2 else hw + 1
    assert sum(p.numel() for p in model.parameters()) == trunk_params(variant) + reducer + head
    assert sum(isinstance(m, torch.nn.Linear) for m in model.head.modules()) == linear_layers
    with torch.no_grad():
        x = torch.randn(1, 3, 256, 256)
        deps = model.forward_features(x)
        assert deps.shape == (1, hw, hw)
        assert model(x).shape == (1,)


def test_trunk_is_untrained_random_init():
    a, b = IPDNet(), IPDNet()
    assert not torch.equal(a.trunk.stem[0].weight, b.trunk.stem[0].weight)


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="unknown variant"):
        IPDConfig(variant="layer5")
    with pytest.raises(ValueError, match="multiple of 32"):
        IPDConfig(variant="layer4", input_size=100)


def test_pooled_dependencies_is_the_heads_pooling_of_the_full_matrix():
    torch.manual_seed(0)
    model = IPDNet(IPDConfig(variant="layer4")).double().eval()
    features = torch.randn(3, 2048, 8, 8, dtype=torch.float64)
    dependencies = model.dependency(features)  # (3, 64, 64)
    b, hw, _ = dependencies.shape
    pooled = model.head.pool(dependencies.transpose(1, 2).reshape(b, hw, 8, 8)).flatten(1)
    torch.testing.assert_close(model.dependency.pooled(features), pooled)


@pytest.mark.parametrize("variant", ["layer2", "layer3"])
def test_forward_pooled_equals_forward(variant):
    torch.manual_seed(0)
    model = IPDNet(IPDConfig(variant=variant, input_size=64)).double().eval()
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(model.forward_pooled(x), model(x))


def test_forward_pooled_runs_the_trunk_in_bf16_from_the_stage_asked_and_the_head_in_fp32():
    torch.manual_seed(0)
    model = IPDNet(IPDConfig(input_size=64)).eval()
    seen = []
    for module in (model.srm, model.trunk.stem, *model.trunk.stages, model.head.classifier):
        module.register_forward_hook(lambda m, args, out: seen.append(out.dtype))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        logits = model.forward_pooled(x, bf16_from=1)
    assert seen == [torch.float32, torch.float32, torch.bfloat16, torch.bfloat16, torch.float32]
    assert logits.dtype == torch.float32
    seen.clear()
    with torch.no_grad():
        model.forward_pooled(x)
    assert set(seen) == {torch.float32}
