using Ebp.Conformance;

namespace Ebp.Core.Tests.Conformance;

/// <summary>The public reference vectors (TorchRay, PyTorch 1.13.1), copied byte-identical into TestData/reference.</summary>
[TestClass]
public sealed class ReferenceVectorTests
{
    private static readonly string Folder = Path.Combine(AppContext.BaseDirectory, "TestData", "reference");

    public static IEnumerable<object[]> Cases()
        => ConformanceCase.Load(Path.Combine(Folder, "cases.json")).Select(c => new object[] { c.Name });

    [TestMethod]
    [DynamicData(nameof(Cases))]
    public void ReferenceCase_PassesItsCriterion(string name)
    {
        var c = ConformanceCase.Load(Path.Combine(Folder, "cases.json")).Single(k => k.Name == name);
        var outcome = CaseRunner.Run(c, Folder);
        try
        {
            Assert.IsTrue(outcome.HasExpected, $"{name}: {outcome.Error}");
            Assert.IsTrue(outcome.Passed, $"{name}: {outcome.Error}");
            Assert.IsTrue(outcome.RelativeError <= c.RtolOfMax);
        }
        finally { outcome.Map?.Dispose(); }
    }

    /// <summary>
    /// The same cases through a session (rules and W⁺ installed once, kept across calls): that path must meet
    /// the reference too. The reference models' linear layers are small, so both paths clamp them whole; the
    /// block-by-block evaluation is checked against the whole-W⁺ one in BlockedLinearRuleTests.
    /// </summary>
    [TestMethod]
    public void AllCases_InASession_PassTheirCriterion()
    {
        var failures = new List<string>();
        foreach (var (folder, c) in ConformanceCase.Load(Path.Combine(Folder, "cases.json")).Select(c => (Folder, c))
                     .Concat(ConformanceCase.Load(Path.Combine(HeldOut, "cases.json")).Select(c => (HeldOut, c))))
        {
            var outcome = CaseRunner.Run(c, folder, inSession: true);
            outcome.Map?.Dispose();
            if (!(outcome.HasExpected && outcome.Passed && outcome.RelativeError <= c.RtolOfMax)) failures.Add($"{c.Name}: {outcome.Error}");
        }
        Assert.AreEqual(0, failures.Count, string.Join("; ", failures));
    }

    private static readonly string HeldOut = Path.Combine(AppContext.BaseDirectory, "TestData", "heldout");

    public static IEnumerable<object[]> HeldOutCases()
        => ConformanceCase.Load(Path.Combine(HeldOut, "cases.json")).Select(c => new object[] { c.Name });

    /// <summary>Cases from tests/heldout: an independent float64 implementation, other seeds, shapes and layers.</summary>
    [TestMethod]
    [DynamicData(nameof(HeldOutCases))]
    public void HeldOutCase_PassesItsCriterion(string name)
    {
        var c = ConformanceCase.Load(Path.Combine(HeldOut, "cases.json")).Single(k => k.Name == name);
        var outcome = CaseRunner.Run(c, HeldOut);
        try
        {
            Assert.IsTrue(outcome.HasExpected && outcome.Passed, $"{name}: {outcome.Error}");
            Assert.IsTrue(outcome.RelativeError <= c.RtolOfMax);
        }
        finally { outcome.Map?.Dispose(); }
    }

    [TestMethod]
    public void PublicVectors_AreByteIdenticalToTheirRecordedHashes()
    {
        // SHA-256 of the files as published in shared/reference; a changed byte fails here.
        foreach (var (file, sha) in PublicHashes)
        {
            var actual = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(Path.Combine(Folder, file))));
            Assert.AreEqual(sha, actual, file);
        }
    }

    [TestMethod]
    public void AllNineteenPublicCasesArePresent()
        => Assert.AreEqual(19, ConformanceCase.Load(Path.Combine(Folder, "cases.json")).Count);

    [TestMethod]
    public void PlainEbpMaps_ConserveTheSignal()
    {
        // README 4.1: a one-hot plain-EBP map sums to ≈ 1 before any resize (within 4 % for every case).
        foreach (var c in ConformanceCase.Load(Path.Combine(Folder, "cases.json"))
                     .Where(c => c.Method == "excitation_backprop" && c.Resize is null && !c.File.Contains("target_gradient")))
        {
            var outcome = CaseRunner.Run(c, Folder);
            using var map = outcome.Map ?? throw new AssertFailedException($"{c.Name}: {outcome.Error}");
            var batch = map.shape[0];
            for (long b = 0; b < batch; b++)
                Assert.AreEqual(1.0, map[b].sum().item<float>(), 0.04, $"{c.Name}[{b}]");
        }
    }

    private static readonly (string File, string Sha256)[] PublicHashes =
    {
        ("README.md", "8c7bf08884f921549444bedc9f88f385e2452d7702424e1631f429370d13032b"),
        ("cases.json", "7b5aa0c84c8f381a618ff7c0b8f4fb3654f7434cdec75c0a6d535bc1b36e7671"),
        ("resnet_basic_ebp_layer2.safetensors", "eacfa8ab093b97c4e71910a057b9ba26fabe86a66b4e1fcfa5dec981d3c19545"),
        ("resnet_bottleneck_cebp_avgpool.safetensors", "519e44bfbb539cf852a8278fb8ebdd2fc5e13f54dfd98c38043cc309498ea6b9"),
        ("resnet_bottleneck_ebp_layer3.safetensors", "9fe5e200a21df07f035e44812847ed9d488e439dc782bfebc9533618ff6e493e"),
        ("seq_conv1d_ebp_input.safetensors", "b85393bddf05ca816b3a81e5999fda019d13523be663563642757a31ea4e2563"),
        ("seq_conv2d_mixed_ebp_input.safetensors", "682c172a1582faade5bf3b8dc97eebcb0c06cd8ae7c3a2eab4f159f9d9c28755"),
        ("seq_conv3d_ebp_relu.safetensors", "3a389fdc5311fb9d0c03dbef3559f1e6838ce515bb8f39e6b9d8042ff8463897"),
        ("vgg_bn_cebp_explicit.safetensors", "769b419a7a2f11fa84db6df8e0186a90ff670c5ec2259a1c3094edc0720cc0ca"),
        ("vgg_bn_ebp_mid.safetensors", "98abea3fc732d3521fd2974a48dd37936694532fcf2a5ea5d602210f7f011107"),
        ("vgg_bn_ebp_resize_smooth.safetensors", "7a0c5496acbe84e5bcc676f58212b36fe53ec2b942e690518705231c0412621c"),
        ("vgg_bn_ebp_resize_true.safetensors", "bf4f6db1b1fca417b13592172ddc0c2e16fd0505e71d45d674d397f758c9ee55"),
        ("vgg_bn_ebp_resize_wh_bilinear.safetensors", "205805f689e5269ee186c200d5b859b05312f47c35d840eda27493ef8894e29e"),
        ("vgg_bn_ebp_resize_wh_nearest.safetensors", "f178693e57ff0dcab82b30d66cf6729d3b72b24ab4171f6cc7b4349cc74b1c87"),
        ("vgg_bn_ebp_target_gradient.safetensors", "b0bf50411175bbed42c712566c29912f437937abcbdbadea20a7b77ab37fb72d"),
        ("vgg_bn_gradient_sum.safetensors", "6fb711ca53519e563762df335784431817c771b61832c846052090feaac74ec8"),
        ("vgg_cebp_auto_batch2.safetensors", "17c16c809523ed2523e261d253e8e7b3a09c844ba0597eaad4393b8d076cf13b"),
        ("vgg_ebp_batch2_conv.safetensors", "875eabdbf1fff3c7a5ded182077ea8986c8449a048f402d1beaa44fb44921e78"),
        ("vgg_ebp_input.safetensors", "2c08c01032f83501bcbc37609b07b5a9cd8f1b71f66e0d1d5442517a584ff21b"),
        ("vgg_ebp_relu_mid.safetensors", "78aefef7c7a29faeeb8e4627cda78cd7899b695f40a4ba069d7c914dfc4009c8"),
        ("vgg_gradient_input.safetensors", "4d18c9acc0b57fe2db287f1326d1d05f7fb1114831ddd8e2a5f9e9ecf184ef38"),
    };
}
