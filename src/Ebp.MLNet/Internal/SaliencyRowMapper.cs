using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;

namespace Ebp.MLNet.Internal;

/// <summary>
/// The row-to-row mapper behind <c>PredictionEngine</c>: computes one row at a time (a batch of one) when a stage
/// column is read, and caches the result until the input row's position changes.
/// </summary>
internal sealed class SaliencyRowMapper : IRowToRowMapper
{
    private readonly SaliencyTransformer _parent;
    private readonly Binding _binding;

    public SaliencyRowMapper(SaliencyTransformer parent, Binding binding)
    {
        _parent = parent;
        _binding = binding;
    }

    public DataViewSchema InputSchema => _binding.Input;

    public DataViewSchema OutputSchema => _binding.Output;

    public IEnumerable<DataViewSchema.Column> GetDependencies(IEnumerable<DataViewSchema.Column> dependingColumns)
    {
        ArgumentNullException.ThrowIfNull(dependingColumns);
        return _binding.Dependencies(dependingColumns);
    }

    public DataViewRow GetRow(DataViewRow input, IEnumerable<DataViewSchema.Column> activeColumns)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(activeColumns);
        if (!ReferenceEquals(input.Schema, _binding.Input) && !SameColumns(input.Schema, _binding.Input))
            throw new ArgumentException("The input row's schema is not the schema this mapper was created for.", nameof(input));
        return new Row(_parent, _binding, input, activeColumns);
    }

    private static bool SameColumns(DataViewSchema a, DataViewSchema b) =>
        a.Count == b.Count && Enumerable.Range(0, a.Count).All(i => a[i].Name == b[i].Name && a[i].Type.Equals(b[i].Type));

    /// <summary>The output row; like ML.NET's own mappers, disposing it disposes the input row.</summary>
    private sealed class Row : DataViewRow
    {
        private readonly SaliencyTransformer _parent;
        private readonly Binding _binding;
        private readonly DataViewRow _input;
        private readonly bool[] _active;
        private readonly RowInput[] _inputs;
        private readonly RowOutput[] _outputs;
        private readonly RowReader? _reader;
        private readonly BatchComputer? _computer;
        private long _computedPosition = long.MinValue;
        private bool _disposed;

        public Row(SaliencyTransformer parent, Binding binding, DataViewRow input, IEnumerable<DataViewSchema.Column> activeColumns)
        {
            _parent = parent;
            _binding = binding;
            _input = input;
            _active = new bool[binding.Output.Count];
            foreach (var c in activeColumns) _active[c.Index] = true;
            bool computes = Enumerable.Range(binding.Input.Count, binding.Output.Count - binding.Input.Count).Any(i => _active[i]);
            _inputs = [];
            _outputs = [];
            if (!computes) return;
            bool overlay = binding.OverlayIndex >= 0 && _active[binding.OverlayIndex];
            _inputs = [new RowInput(binding.Config, overlay)];
            _outputs = [new RowOutput(binding.Config)];
            _reader = new RowReader(input, binding);
            _computer = new BatchComputer(binding.Config, overlay);
        }

        public override DataViewSchema Schema => _binding.Output;

        public override long Position => _input.Position;

        public override long Batch => _input.Batch;

        public override ValueGetter<DataViewRowId> GetIdGetter() => _input.GetIdGetter();

        public override bool IsColumnActive(DataViewSchema.Column column) =>
            column.Index >= 0 && column.Index < _active.Length && _active[column.Index];

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            if (!IsColumnActive(column))
                throw new InvalidOperationException($"Column '{column.Name}' is not active in this row.");
            var type = _binding.Output[column.Index].Type;
            if (typeof(TValue) != type.RawType)
                throw new InvalidOperationException(
                    $"Invalid TValue in GetGetter: '{typeof(TValue)}', expected type: '{type.RawType}' for column '{column.Name}' ({type}).");
            if (!_binding.IsAdded(column.Index)) return _input.GetGetter<TValue>(_binding.Input[column.Index]);
            return (ValueGetter<TValue>)OutputGetters.Make(_binding, column.Index, Current);
        }

        private RowOutput Current()
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            long position = _input.Position;
            if (position != _computedPosition || position < 0)
            {
                _computedPosition = long.MinValue;
                _reader!.Read(_inputs[0], position);
                using (var lease = _parent.Pool.Rent())
                    _computer!.Compute(lease, _inputs, _outputs, 1);
                _computedPosition = position;
                if (_outputs[0].Error.Length > 0)
                {
                    using var channel = _parent.Log.Start();
                    channel?.Warning(MessageSensitivity.None, $"Row {position} skipped: {_outputs[0].Error}.");
                }
            }
            return _outputs[0];
        }

        protected override void Dispose(bool disposing)
        {
            if (_disposed) return;
            _disposed = true;
            if (disposing)
            {
                _input.Dispose();
            }
            base.Dispose(disposing);
        }
    }
}
