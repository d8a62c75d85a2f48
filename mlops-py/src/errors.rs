//! The Python exceptions, made here in Rust, and the one boundary where a core error becomes
//! one of them: `?` on a core result inside a binding converts through [`BindingError`].
//!
//! Every exception derives from `mlops.MlopsError`; those that are also a built-in kind
//! (`FileNotFoundError`, `ValueError`, ...) have both bases, so `except FileNotFoundError`
//! works as a Python user expects.

use mlops_core::Error;
use pyo3::create_exception;
use pyo3::exceptions::{
    PyException, PyFileNotFoundError, PyOSError, PyPermissionError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};

create_exception!(
    mlops,
    MlopsError,
    PyException,
    "Base class of every error raised by mlops."
);
create_exception!(
    mlops,
    PackageError,
    MlopsError,
    "A model package is missing, corrupted or of an unknown format."
);
create_exception!(
    mlops,
    DatabaseError,
    MlopsError,
    "A database operation failed (passwords are never shown); `sqlstate` holds the server's code when it gave one."
);
create_exception!(mlops, KafkaError, MlopsError, "A Kafka operation failed.");
create_exception!(
    mlops,
    ConflictError,
    MlopsError,
    "Another process changed what this one was updating; nothing of the step was written."
);

/// The exceptions with two bases: `MlopsError` and a built-in exception.
struct Dual {
    file_not_found: Py<PyType>,
    permission: Py<PyType>,
    io: Py<PyType>,
    invalid_parameter: Py<PyType>,
    decode: Py<PyType>,
    manifest: Py<PyType>,
    empty_dataset: Py<PyType>,
}

static DUAL: PyOnceLock<Dual> = PyOnceLock::new();

/// `class <name>(MlopsError, <builtin>)` in module `mlops`, with a docstring.
fn dual_type(
    py: Python<'_>,
    name: &str,
    builtin: Bound<'_, PyType>,
    doc: &str,
) -> PyResult<Py<PyType>> {
    let namespace = PyDict::new(py);
    namespace.set_item("__module__", "mlops")?;
    namespace.set_item("__doc__", doc)?;
    let bases = PyTuple::new(py, [py.get_type::<MlopsError>(), builtin])?;
    let made = py
        .get_type::<PyType>()
        .call1((name, bases, namespace))?
        .cast_into::<PyType>()?;
    Ok(made.unbind())
}

fn dual(py: Python<'_>) -> PyResult<&Dual> {
    DUAL.get_or_try_init(py, || {
        Ok(Dual {
            file_not_found: dual_type(
                py,
                "MlopsFileNotFoundError",
                py.get_type::<PyFileNotFoundError>(),
                "A file, folder or model package location does not exist.",
            )?,
            permission: dual_type(
                py,
                "MlopsPermissionError",
                py.get_type::<PyPermissionError>(),
                "A file or folder cannot be read or written.",
            )?,
            io: dual_type(
                py,
                "MlopsIOError",
                py.get_type::<PyOSError>(),
                "Another operating-system error.",
            )?,
            invalid_parameter: dual_type(
                py,
                "InvalidParameterError",
                py.get_type::<PyValueError>(),
                "A parameter is out of range or malformed; the message names it.",
            )?,
            decode: dual_type(
                py,
                "DecodeError",
                py.get_type::<PyValueError>(),
                "An image could not be decoded; the message names the file.",
            )?,
            manifest: dual_type(
                py,
                "ManifestError",
                py.get_type::<PyValueError>(),
                "A manifest line or row is malformed; the message names it.",
            )?,
            empty_dataset: dual_type(
                py,
                "EmptyDatasetError",
                py.get_type::<PyValueError>(),
                "A data set has no usable classes or images.",
            )?,
        })
    })
}

/// Adds every exception class to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("MlopsError", py.get_type::<MlopsError>())?;
    m.add("PackageError", py.get_type::<PackageError>())?;
    m.add("DatabaseError", py.get_type::<DatabaseError>())?;
    m.add("KafkaError", py.get_type::<KafkaError>())?;
    m.add("ConflictError", py.get_type::<ConflictError>())?;
    let d = dual(py)?;
    for (name, ty) in [
        ("MlopsFileNotFoundError", &d.file_not_found),
        ("MlopsPermissionError", &d.permission),
        ("MlopsIOError", &d.io),
        ("InvalidParameterError", &d.invalid_parameter),
        ("DecodeError", &d.decode),
        ("ManifestError", &d.manifest),
        ("EmptyDatasetError", &d.empty_dataset),
    ] {
        m.add(name, ty.bind(py))?;
    }
    Ok(())
}

/// An error on its way to Python: from the core, or already a Python exception.
pub(crate) enum BindingError {
    /// A core error, converted by kind.
    Core(Error),
    /// A Python exception (a bad argument, a callback's error), passed through.
    Python(PyErr),
}

/// What bindings return; `?` works on core and Python results alike.
pub(crate) type BindingResult<T> = Result<T, BindingError>;

impl From<Error> for BindingError {
    fn from(e: Error) -> Self {
        BindingError::Core(e)
    }
}

impl From<PyErr> for BindingError {
    fn from(e: PyErr) -> Self {
        BindingError::Python(e)
    }
}

impl From<BindingError> for PyErr {
    fn from(e: BindingError) -> Self {
        match e {
            BindingError::Python(e) => e,
            BindingError::Core(e) => Python::attach(|py| core_to_py(py, e)),
        }
    }
}

/// An `InvalidParameterError` with `message` (argument checks made in the bindings).
pub(crate) fn invalid(message: impl Into<String>) -> BindingError {
    BindingError::Core(Error::InvalidParameter {
        name: "argument",
        reason: message.into(),
    })
}

fn core_to_py(py: Python<'_>, e: Error) -> PyErr {
    let message = e.report();
    let Ok(d) = dual(py) else {
        return MlopsError::new_err(message);
    };
    let dual_err = |ty: &Py<PyType>| PyErr::from_type(ty.bind(py).clone(), message.clone());
    match &e {
        Error::Io { source, .. } => match source.kind() {
            std::io::ErrorKind::NotFound => dual_err(&d.file_not_found),
            std::io::ErrorKind::PermissionDenied => dual_err(&d.permission),
            _ => dual_err(&d.io),
        },
        Error::InvalidParameter { .. } | Error::OverlappingFolders { .. } => {
            dual_err(&d.invalid_parameter)
        }
        Error::Decode { .. } | Error::EmptyImage { .. } | Error::UnsupportedFormat { .. } => {
            dual_err(&d.decode)
        }
        Error::Manifest { .. } => dual_err(&d.manifest),
        Error::EmptyDataset { .. } => dual_err(&d.empty_dataset),
        Error::Package { .. } | Error::Weights { .. } | Error::Json { .. } => {
            PackageError::new_err(message)
        }
        Error::Database { .. } => {
            let err = DatabaseError::new_err(message);
            let _ = err
                .value(py)
                .setattr("sqlstate", e.sqlstate().map(str::to_string));
            err
        }
        Error::Kafka { .. } => KafkaError::new_err(message),
        Error::Conflict { .. } => ConflictError::new_err(message),
        _ => MlopsError::new_err(message),
    }
}
