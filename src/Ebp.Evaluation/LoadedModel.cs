using Ebp.Models;
using Ebp.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.Evaluation;

/// <summary>A model card (<see cref="ModelCard"/>, in Ebp.Core) with its model, weights loaded strictly, in eval mode.</summary>
public sealed class LoadedModel : IDisposable
{
    private LoadedModel(ModelCard card, nn.Module<Tensor, Tensor> model, string cardPath)
    {
        Card = card;
        Model = model;
        CardPath = cardPath;
    }

    /// <summary>The card the model was built from.</summary>
    public ModelCard Card { get; }

    /// <summary>The network, weights loaded, eval mode.</summary>
    public nn.Module<Tensor, Tensor> Model { get; }

    /// <summary>The card's file.</summary>
    public string CardPath { get; }

    /// <summary>The weight file, next to the card.</summary>
    public string WeightsPath => Card.WeightsPathNextTo(CardPath)!;

    /// <summary>Loads <paramref name="cardPath"/> and its weights (strict: every key must match).</summary>
    public static LoadedModel Load(string cardPath, bool verifyChecksum = true)
    {
        var card = ModelCard.Load(cardPath);
        if (card.Weights.Length == 0 || card.ClassNames.Count == 0)
            throw new InvalidDataException($"'{cardPath}' is not a model card to evaluate: it needs \"weights\" and \"class_names\".");
        var model = card.BuildModel();
        var loaded = new LoadedModel(card, model, cardPath);
        try
        {
            if (verifyChecksum && card.WeightsSha256 is { } expected)
            {
                var actual = ModelCard.Sha256(loaded.WeightsPath);
                if (!string.Equals(actual, expected, StringComparison.OrdinalIgnoreCase))
                    throw new InvalidDataException(
                        $"'{loaded.WeightsPath}' has SHA-256 {actual}, but the card '{cardPath}' expects {expected}. " +
                        "The weights and the card do not belong together (re-run the training command or restore the file).");
            }
            WeightLoader.Load(model, loaded.WeightsPath, strict: true);
            model.eval();
            return loaded;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>Disposes the network.</summary>
    public void Dispose() => Model.Dispose();
}
