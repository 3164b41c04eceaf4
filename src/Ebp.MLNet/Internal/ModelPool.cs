using System.Collections.Concurrent;
using Ebp.Models;
using Ebp.Weights;
using TorchSharp.PyBridge;
using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.MLNet.Internal;

/// <summary>A model architecture built from the options, without the weight file applied.</summary>
internal sealed class ModelPrototype
{
    private ModelPrototype(nn.Module<Tensor, Tensor> module, bool owned) { Module = module; Owned = owned; }

    public nn.Module<Tensor, Tensor> Module { get; }

    /// <summary>False for a user-supplied <see cref="SaliencyEstimator.Options.Model"/>, which is never disposed here.</summary>
    public bool Owned { get; }

    public static ModelPrototype Build(SaliencyEstimator.Options o)
    {
        if (o.Model is not null) return new ModelPrototype(o.Model, owned: false);
        return new ModelPrototype(CreateArchitecture(o.Architecture, o.NumClasses, o.ModelSpecJson, o.ModelFactory, o.OnnxFiles), owned: true);
    }

    public static nn.Module<Tensor, Tensor> CreateArchitecture(string? architecture, int numClasses, string? specJson,
                                                               Func<nn.Module<Tensor, Tensor>>? factory, OnnxFiles? onnx = null)
    {
        if (onnx is not null) return OnnxSource.Create(onnx);
        if (architecture is not null) return ModelZoo.Create(architecture, numClasses);
        if (specJson is not null) return ModelSpec.Build(specJson);
        if (factory is not null)
            return factory() ?? throw new InvalidOperationException("The ModelFactory returned null.");
        throw new InvalidOperationException("No model source.");
    }
}

/// <summary>
/// The model instances of one transformer. Each forward/backward pass rents an instance, so passes running at the
/// same time (concurrent cursors, several prediction engines) never share one; extra instances are created on demand
/// and get the first instance's weights. A user-supplied module is the only instance and is shared (the engine
/// serialises calls on it).
/// </summary>
internal sealed class ModelPool : IDisposable
{
    private readonly Func<nn.Module<Tensor, Tensor>>? _createArchitecture;
    private readonly bool _owned;
    private readonly ConcurrentBag<nn.Module<Tensor, Tensor>> _free = new();
    private readonly List<nn.Module<Tensor, Tensor>> _all = new();
    private readonly Device _device;
    private nn.Module<Tensor, Tensor> _primary;
    // After Dispose: the primary instance's weights (safetensors bytes, managed memory), from which the pool rebuilds an
    // instance if the transformer is used again. ML.NET's PredictionEngine disposes the transformer it was made from,
    // which the caller usually still holds.
    private byte[]? _released;
    private int _generation;

    private ModelPool(nn.Module<Tensor, Tensor> primary, bool owned, Device device, Func<nn.Module<Tensor, Tensor>>? createArchitecture)
    {
        _primary = primary;
        _owned = owned;
        _device = device;
        _createArchitecture = createArchitecture;
        _all.Add(primary);
        if (owned) _free.Add(primary);
    }

    /// <summary>The first instance: it defines the weights of all others and is what gets saved.</summary>
    public nn.Module<Tensor, Tensor> Primary
    {
        get
        {
            lock (_all)
            {
                Revive();
                return _primary;
            }
        }
    }

    /// <summary>How many instances exist (for tests and diagnostics).</summary>
    public int InstanceCount { get { lock (_all) return _all.Count; } }

    /// <summary>Whether the model instances were released by Dispose (and not rebuilt since).</summary>
    public bool IsReleased { get { lock (_all) return _released is not null; } }

    /// <summary>Parses a device string and checks that TorchSharp can use it.</summary>
    public static Device ParseDevice(string device)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(device);
        string cudaMessage =
            $"Device \"{device}\" was requested but CUDA is not available. CUDA needs a CUDA build of TorchSharp " +
            "(reference TorchSharp-cuda-linux or TorchSharp-cuda-windows instead of TorchSharp-cpu) and an NVIDIA driver; use Device = \"cpu\" otherwise.";
        bool wantsCuda = device.Trim().StartsWith("cuda", StringComparison.OrdinalIgnoreCase);
        if (wantsCuda && !torch.cuda.is_available()) throw new ArgumentException(cudaMessage, "options");
        Device d;
        try
        {
            d = torch.device(device.Trim());
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new ArgumentException($"Device \"{device}\" is not a TorchSharp device string (\"cpu\", \"cuda\", \"cuda:1\"): {e.Message}", "options", e);
        }
        if (d.type == DeviceType.CUDA && !torch.cuda.is_available()) throw new ArgumentException(cudaMessage, "options");
        return d;
    }

    /// <summary>Prepares the primary instance from the options: weight file, device, eval mode.</summary>
    public static ModelPool Create(nn.Module<Tensor, Tensor> primary, SaliencyEstimator.Options o, bool owned)
    {
        var device = ParseDevice(o.Device);
        if (o.WeightsPath is not null) WeightLoader.Load(primary, o.WeightsPath, o.WeightsPrefix);
        Prepare(primary, device);
        Func<nn.Module<Tensor, Tensor>>? create = owned
            ? () => ModelPrototype.CreateArchitecture(o.Architecture, o.NumClasses, o.ModelSpecJson, o.ModelFactory, o.OnnxFiles)
            : null;
        return new ModelPool(primary, owned, device, create);
    }

    /// <summary>A pool around a primary instance whose weights are already loaded (after <see cref="SaliencyModel.Load(Microsoft.ML.MLContext, string, out Microsoft.ML.DataViewSchema?, SaliencyModelLoadOptions?)"/>).</summary>
    public static ModelPool FromLoaded(nn.Module<Tensor, Tensor> primary, Device device, Func<nn.Module<Tensor, Tensor>> createArchitecture)
    {
        Prepare(primary, device);
        return new ModelPool(primary, owned: true, device, createArchitecture);
    }

    private static void Prepare(nn.Module<Tensor, Tensor> model, Device device)
    {
        if (model.parameters().FirstOrDefault() is { } p && p.device != device) model.to(device);
        model.eval();
    }

    /// <summary>
    /// The primary instance's <c>state_dict</c> as safetensors bytes.
    /// </summary>
    /// <exception cref="ObjectDisposedException">The model holds no weights any more (a user-supplied module that was disposed).</exception>
    public byte[] SerializeWeights()
    {
        lock (_all)
        {
            if (_released is not null) return _released;
            return Serialize(_primary);
        }
    }

    private static byte[] Serialize(nn.Module<Tensor, Tensor> model)
    {
        using var scope = torch.NewDisposeScope();
        var state = new Dictionary<string, Tensor>();
        foreach (var (name, tensor) in model.state_dict())
        {
            if (tensor is null || tensor.IsInvalid)
                throw new ObjectDisposedException(nameof(SaliencyTransformer), $"The saliency stage's model was disposed (its weight '{name}' is gone); nothing can be saved.");
            state[name] = tensor.detach().cpu().contiguous();
        }
        if (state.Count == 0)
            throw new ObjectDisposedException(nameof(SaliencyTransformer),
                "The saliency stage's model holds no weights (it was disposed); saving it would write an empty, unloadable stage.");
        using var ms = new MemoryStream();
        Safetensors.SaveStateDict(ms, state, true);
        return ms.ToArray();
    }

    /// <summary>Rebuilds the primary instance from the weights kept by <see cref="Dispose"/>. Caller holds the lock.</summary>
    private void Revive()
    {
        if (_released is null) return;
        var model = _createArchitecture!() ?? throw new InvalidOperationException("The model factory returned null.");
        try
        {
            using (var scope = torch.NewDisposeScope())
            using (var stream = new MemoryStream(_released))
                WeightLoader.LoadStateDict(model, Safetensors.LoadStateDict(stream, true), strict: true);
            Prepare(model, _device);
        }
        catch
        {
            model.Dispose();
            throw;
        }
        _primary = model;
        _all.Add(model);
        _free.Add(model);
        _released = null;
    }

    public Lease Rent()
    {
        int generation;
        lock (_all)
        {
            Revive();
            generation = _generation;
        }
        if (!_owned) return new Lease(this, _primary, pooled: false, generation);
        if (_free.TryTake(out var model)) return new Lease(this, model, pooled: true, generation);

        var created = _createArchitecture!() ?? throw new InvalidOperationException("The model factory returned null.");
        try
        {
            // Same weights as the primary instance, whatever the factory's initialisation.
            using (torch.NewDisposeScope())
                WeightLoader.LoadStateDict(created, Primary.state_dict(), strict: true);
            Prepare(created, _device);
        }
        catch
        {
            created.Dispose();
            throw;
        }
        lock (_all)
        {
            if (_generation != generation)
            {
                created.Dispose();
                throw new ObjectDisposedException(nameof(SaliencyTransformer));
            }
            _all.Add(created);
        }
        return new Lease(this, created, pooled: true, generation);
    }

    private void Return(nn.Module<Tensor, Tensor> model, int generation)
    {
        lock (_all)
            if (_generation == generation) _free.Add(model);
    }

    /// <summary>
    /// Frees the model instances (a user-supplied module is never disposed). The weights are kept in managed memory, so
    /// the transformer can still be used and saved; its next pass rebuilds one instance.
    /// </summary>
    public void Dispose()
    {
        if (!_owned) return;
        lock (_all)
        {
            if (_released is not null) return;
            _released = Serialize(_primary);
            _generation++;
            foreach (var m in _all) m.Dispose();
            _all.Clear();
            _free.Clear();
        }
    }

    /// <summary>One rented model instance; dispose to give it back.</summary>
    public sealed class Lease : IDisposable
    {
        private readonly ModelPool _pool;
        private readonly bool _pooled;
        private readonly int _generation;
        private bool _returned;

        internal Lease(ModelPool pool, nn.Module<Tensor, Tensor> model, bool pooled, int generation)
        {
            _pool = pool;
            Model = model;
            Explainer = new SaliencyExplainer(model);
            _pooled = pooled;
            _generation = generation;
        }

        public nn.Module<Tensor, Tensor> Model { get; }
        public SaliencyExplainer Explainer { get; }

        /// <summary>Throws if the transformer was disposed after this instance was rented (the instance is gone).</summary>
        public void CheckAlive()
        {
            lock (_pool._all)
                ObjectDisposedException.ThrowIf(_pool._generation != _generation, typeof(SaliencyTransformer));
        }

        public void Dispose()
        {
            if (_returned) return;
            _returned = true;
            if (_pooled) _pool.Return(Model, _generation);
        }
    }
}
