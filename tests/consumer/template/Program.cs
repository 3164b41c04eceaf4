using Ebp;
using TorchSharp;
using static TorchSharp.torch;

// A bias-free linear model on a 2×2 one-channel image. EBP of class 1 at the input is
// x_i·W⁺[1,i] / Σ_j x_j·W⁺[1,j]: with x = (1, 2, 3, 4) and W[1] = (1, −1, 2, 0), W⁺[1] = (1, 0, 2, 0), so the map
// is (1, 0, 6, 0) / 7, which sums to 1.
var model = nn.Sequential(("flatten", nn.Flatten()), ("fc", nn.Linear(4, 3, hasBias: false)));
using (torch.no_grad())
    model.named_parameters().Single().parameter.copy_(
        torch.tensor(new float[] { 0.5f, 1, 0, 0.2f, 1, -1, 2, 0, 0, 0, 0, 1 }).reshape(3, 4));
using var x = torch.tensor(new float[] { 1, 2, 3, 4 }).reshape(1, 1, 2, 2);
using var result = new SaliencyExplainer(model).Explain(x, SaliencyTarget.Class(1), new SaliencyOptions());

float[] map = result.Map.data<float>().ToArray();
float[] expected = [1f / 7, 0, 6f / 7, 0];
Console.WriteLine($"map [{string.Join(", ", map.Select(v => v.ToString("F6")))}], sum {map.Sum():F6}");
bool ok = map.Length == expected.Length && map.Zip(expected).All(p => Math.Abs(p.First - p.Second) <= 1e-5);
Console.WriteLine(ok ? "OK: the EBP map equals the hand-computed (1, 0, 6, 0) / 7" : "FAIL: expected (1, 0, 6, 0) / 7");
return ok ? 0 : 1;
