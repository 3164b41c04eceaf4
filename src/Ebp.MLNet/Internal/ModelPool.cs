using System.Collections.Concurrent;
using Ebp.Models;
using Ebp.Weights;
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
        return new ModelPrototype(CreateArchitecture(o.Architecture, o.NumClasses, o.ModelSpecJson, o.ModelFactory), owned: true);
    }

    public static nn.Module<Tensor, Tensor> CreateArchitecture(string? architecture, int numClasses, string? specJson,
                                                               Func<nn.Module<Tensor, Tensor>>? factory)
    {
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
    private volatile bool _disposed;

    private ModelPool(nn.Module<Tensor, Tensor> primary, bool owned, Device device, Func<nn.Module<Tensor, Tensor>>? createArchitecture)
    {
        Primary = primary;
        _owned = owned;
        _device = device;
        _createArchitecture = createArchitecture;
        _all.Add(primary);
        if (owned) _free.Add(primary);
    }

    /// <summary>The first instance: it defines the weights of all others and is what gets saved.</summary>
    public nn.Module<Tensor, Tensor> Primary { get; }

    /// <summary>How many instances exist (for tests and diagnostics).</summary>
    public int InstanceCount { get { lock (_all) return _all.Count; } }

    /// <summary>Parses a device string and checks that TorchSharp can use it.</summary>
    public static Device ParseDevice(string device)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(device);
        string cudaMessage =
            $"Device \"{device}\" was requested but CUDA is not available. CUDA needs a CUDA build of TorchSharp " +
            "(reference TorchSharp-cuda-linux or TorchSharp-cuda-windows instead of TorchSharp-cpu) and an NVIDIA driver.";
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
            ? () => ModelPrototype.CreateArchitecture(o.Architecture, o.NumClasses, o.ModelSpecJson, o.ModelFactory)
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

    public Lease Rent()
    {
        ObjectDisposedException.ThrowIf(_disposed, typeof(SaliencyTransformer));
        if (!_owned) return new Lease(this, Primary, pooled: false);
        if (_free.TryTake(out var model)) return new Lease(this, model, pooled: true);

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
            if (_disposed)
            {
                created.Dispose();
                throw new ObjectDisposedException(nameof(SaliencyTransformer));
            }
            _all.Add(created);
        }
        return new Lease(this, created, pooled: true);
    }

    private void Return(nn.Module<Tensor, Tensor> model)
    {
        if (!_disposed) _free.Add(model);
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (!_owned) return;
        lock (_all)
        {
            foreach (var m in _all) m.Dispose();
            _all.Clear();
        }
        _free.Clear();
    }

    /// <summary>One rented model instance; dispose to give it back.</summary>
    public sealed class Lease : IDisposable
    {
        private readonly ModelPool _pool;
        private readonly bool _pooled;
        private bool _returned;

        internal Lease(ModelPool pool, nn.Module<Tensor, Tensor> model, bool pooled)
        {
            _pool = pool;
            Model = model;
            Explainer = new SaliencyExplainer(model);
            _pooled = pooled;
        }

        public nn.Module<Tensor, Tensor> Model { get; }
        public SaliencyExplainer Explainer { get; }

        public void CheckAlive() => ObjectDisposedException.ThrowIf(_pool._disposed, typeof(SaliencyTransformer));

        public void Dispose()
        {
            if (_returned) return;
            _returned = true;
            if (_pooled) _pool.Return(Model);
        }
    }
}
