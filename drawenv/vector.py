"""Vector envs of DrawSpatial: :func:`make_vec`, and an ``AsyncVectorEnv`` that plays the same
trajectories as plain envs (docs/environment.md, Vector environments).

Gymnasium's ``AsyncVectorEnv`` (1.4) has two faults that DrawSpatial meets, because its
observations (images of varying sizes) cannot live in shared memory:

- with ``shared_memory=False`` its worker clears the next-step autoreset flag on an explicit
  ``reset`` only when shared memory is on; so after an episode ends and the caller resets, the
  first ``step`` of the new episode is swallowed by a second, unseeded reset (the action is lost
  and the seeded episode replaced);
- when a step fails in the main process after the workers answered (say, infos that cannot be
  batched), the env stays "waiting for step", and ``close()`` then waits forever for answers that
  were already read.

:class:`AsyncVectorEnv` here keeps Gymnasium's class and pipe protocol and fixes both: its worker
clears the flag on every explicit reset, a failed wait returns the env to its idle state, and
``close()`` waits at most ``close_timeout`` seconds before it terminates the workers. It also sends
only what is new: a step's observation repeats the images of the one before it, so the worker
pickles the new images alone and the main process puts the full tuple back together from the
(read-only) images it already holds.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.spaces.utils import is_space_dtype_shape_equiv
from gymnasium.vector import AutoresetMode
from gymnasium.vector.async_vector_env import AsyncState

from drawenv.errors import check_choice, check_number, invalid_argument

VECTORIZATION_MODES = ("sync", "async")


def make_vec(
    num_envs: int = 1,
    vectorization_mode: str = "sync",
    *,
    env_id: str = "DrawSpatial-v0",
    vector_kwargs: Mapping[str, Any] | None = None,
    wrappers: Sequence[Callable[[gym.Env], gym.Env]] | None = None,
    **env_kwargs: Any,
) -> gym.vector.VectorEnv:
    """``num_envs`` copies of ``gym.make(env_id, **env_kwargs)`` in one vector env.

    ``"sync"`` builds Gymnasium's ``SyncVectorEnv``; ``"async"`` builds :class:`AsyncVectorEnv`
    (worker processes, no shared memory), which steps exactly like plain envs. ``vector_kwargs``
    go to the vector env's constructor (``copy``, ``autoreset_mode``, ``context``, …) and each
    of ``wrappers`` wraps every env, as in ``gymnasium.make_vec``.

    Nothing is copied by default: the envs hand out their stored read-only images
    (``copy_images=False``) and the vector env passes them on as they are (``copy=False``), so
    a step costs the same however many images an episode holds. Pass ``copy_images=True`` or
    ``vector_kwargs={"copy": True}`` for Gymnasium's rule that no two observations share memory.
    Without ``copy_images=True`` the envs are made with ``disable_env_checker=True`` (Gymnasium's
    passive checker would warn about the shared images) unless it is given.
    """
    check_number("num_envs", num_envs, low=1, integer=True)
    mode = check_choice("vectorization_mode", vectorization_mode, VECTORIZATION_MODES)
    if vector_kwargs is not None and not isinstance(vector_kwargs, Mapping):
        raise invalid_argument("vector_kwargs", vector_kwargs, "None or a mapping of keywords")
    env_kwargs = {"copy_images": False, **env_kwargs}
    if env_kwargs["copy_images"] is False:
        # Gymnasium's passive checker would warn once per env that observations share images,
        # which is the point here (they are read-only).
        env_kwargs.setdefault("disable_env_checker", True)
    env_fn = functools.partial(_make_env, env_id, tuple(wrappers or ()), env_kwargs)
    vector_class = gym.vector.SyncVectorEnv if mode == "sync" else AsyncVectorEnv
    return vector_class([env_fn] * num_envs, **{"copy": False, **(vector_kwargs or {})})


def _make_env(
    env_id: str, wrappers: tuple[Callable[[gym.Env], gym.Env], ...], env_kwargs: dict
) -> gym.Env:
    env = gym.make(env_id, **env_kwargs)
    for wrapper in wrappers:
        env = wrapper(env)
    return env


class AsyncVectorEnv(gym.vector.AsyncVectorEnv):
    """Gymnasium's ``AsyncVectorEnv`` without shared memory, fixed to step like plain envs.

    Takes Gymnasium's arguments (``env_fns``, ``copy``, ``context``, ``daemon``,
    ``observation_mode``, ``autoreset_mode``, ``max_concurrency``) except ``shared_memory`` (always
    off: variable-size images cannot be shared) and ``worker`` (its own), plus
    ``close_timeout``: the seconds ``close()`` waits for the workers before terminating them.
    """

    def __init__(
        self,
        env_fns: Sequence[Callable[[], gym.Env]],
        *,
        close_timeout: float = 10.0,
        **kwargs: Any,
    ):
        for name in ("shared_memory", "worker"):
            if kwargs.get(name):
                raise invalid_argument(
                    name,
                    kwargs[name],
                    "it left out (or False)",
                    "drawenv's AsyncVectorEnv never uses shared memory and runs its own worker.",
                )
            kwargs.pop(name, None)
        self.close_timeout = check_number("close_timeout", close_timeout, low=0)
        super().__init__(env_fns, shared_memory=False, worker=_worker, **kwargs)
        self.parent_pipes = [_ImagesPipe(pipe) for pipe in self.parent_pipes]

    def reset_wait(self, timeout: float | None = None):
        try:
            return super().reset_wait(timeout)
        except BaseException:
            self._idle_if(AsyncState.WAITING_RESET)
            raise

    def step_wait(self, timeout: float | None = None):
        try:
            return super().step_wait(timeout)
        except BaseException:
            self._idle_if(AsyncState.WAITING_STEP)
            raise

    def call_wait(self, timeout: float | None = None):
        try:
            return super().call_wait(timeout)
        except BaseException:
            self._idle_if(AsyncState.WAITING_CALL)
            raise

    def _idle_if(self, waiting: AsyncState) -> None:
        # Gymnasium leaves the env waiting when the wait fails after the workers answered (e.g.
        # infos that cannot be batched), and close() would then wait for answers already read.
        if self._state is waiting:
            self._state = AsyncState.DEFAULT

    def close_extras(self, timeout: float | None = None, terminate: bool = False) -> None:
        """Close the workers, waiting at most ``timeout`` (default ``close_timeout``) seconds for
        a pending call and for their goodbyes; then terminate the ones left."""
        timeout = self.close_timeout if timeout is None else timeout
        if self._state != AsyncState.DEFAULT and not terminate:
            try:
                getattr(self, f"{self._state.value}_wait")(timeout)
            except Exception:  # the pending call failed or timed out: nothing more to wait for
                terminate = True
        pipes = [pipe for pipe in self.parent_pipes if pipe is not None and not pipe.closed]
        if not terminate:
            deadline = time.monotonic() + timeout
            try:
                for pipe in pipes:
                    pipe.send(("close", None))
                for pipe in pipes:
                    if not pipe.poll(max(0.0, deadline - time.monotonic())):
                        terminate = True
                        break
                    pipe.recv()
            except (OSError, EOFError):  # a worker that died already
                terminate = True
        if terminate:
            for process in self.processes:
                if process.is_alive():
                    process.terminate()
        for pipe in pipes:
            pipe.close()
        for process in self.processes:
            process.join()


def _worker(
    index: int,
    env_fn: Callable[[], gym.Env],
    pipe: Any,
    parent_pipe: Any,
    shared_memory: Any,
    error_queue: Any,
    autoreset_mode: AutoresetMode = AutoresetMode.NEXT_STEP,
    semaphore: Any = None,
) -> None:
    """Gymnasium's async worker protocol (commands and replies unchanged), without shared
    memory, and with the next-step autoreset flag cleared by every explicit reset."""
    env = env_fn()
    observation = None
    autoreset = False
    parent_pipe.close()
    try:
        while True:
            command, data = pipe.recv()
            if command == "close":
                pipe.send((None, True))
                break
            held = semaphore is not None and command in ("reset", "step")
            if held:
                semaphore.acquire()
            try:
                if command == "reset":
                    observation, info = env.reset(**data)
                    autoreset = False  # the fix: a new episode starts here, whatever came before
                    reply: Any = (observation, info)
                elif command == "reset-noop":
                    reply = (observation, {})
                elif command == "step":
                    reply, autoreset, continued = _step(env, data, autoreset, autoreset_mode)
                    shown, observation = observation, reply[0]
                    if continued:  # send only the images the last observation did not hold
                        reply = (_NewImages.of(shown, observation), *reply[1:])
                elif command == "_call":
                    name, args, kwargs = data
                    if name in ("reset", "step", "close", "_setattr", "_check_spaces"):
                        raise ValueError(
                            f"Trying to call function `{name}` with `call`, use `{name}` "
                            "directly instead."
                        )
                    attr = env.get_wrapper_attr(name)
                    reply = attr(*args, **kwargs) if callable(attr) else attr
                elif command == "_setattr":
                    env.set_wrapper_attr(*data)
                    reply = None
                elif command == "_check_spaces":
                    mode, observation_space, action_space = data
                    same = (
                        observation_space == env.observation_space
                        if mode == "same"
                        else is_space_dtype_shape_equiv(observation_space, env.observation_space)
                    )
                    reply = (same, action_space == env.action_space)
                else:
                    raise RuntimeError(f"Received unknown command `{command}`.")
            finally:
                if held:
                    semaphore.release()
            pipe.send((reply, True))
    except (KeyboardInterrupt, Exception):
        kind, value, _ = sys.exc_info()
        error_queue.put((index, kind, value, traceback.format_exc()))
        with contextlib.suppress(OSError):  # the main process is gone or closed the pipe
            pipe.send((None, False))
    finally:
        env.close()


def _step(
    env: gym.Env, action: Any, autoreset: bool, mode: AutoresetMode
) -> tuple[tuple, bool, bool]:
    """One ``step`` command under autoreset ``mode``: the reply, the next autoreset flag, and
    whether the reply's observation continues the episode of the one before it (no reset)."""
    continued = True
    if mode == AutoresetMode.NEXT_STEP and autoreset:
        observation, info = env.reset()
        reward, terminated, truncated = 0, False, False
        continued = False
    else:
        observation, reward, terminated, truncated, info = env.step(action)
    if mode == AutoresetMode.SAME_STEP and (terminated or truncated):
        final_observation = observation
        observation, reset_info = env.reset()
        info = {"final_info": info, "final_obs": final_observation, **reset_info}
        continued = False
    autoreset = mode == AutoresetMode.NEXT_STEP and bool(terminated or truncated)
    return (observation, reward, terminated, truncated, info), autoreset, continued


class _NewImages:
    """A step's observation as sent by a worker: the number of leading images that equal the
    previous observation's (``kept``), the images after them, and the other keys."""

    def __init__(self, kept: int, images: tuple, rest: dict):
        self.kept, self.images, self.rest = kept, images, rest

    @classmethod
    def of(cls, shown: Any, observation: Any) -> Any:
        """``observation`` as new images after ``shown``'s, or unchanged when it is not a dict of
        image tuples or does not start with ``shown``'s images."""
        old, new = (getattr(o, "get", lambda _: None)("images") for o in (shown, observation))
        if not (isinstance(old, tuple) and isinstance(new, tuple) and len(old) <= len(new)):
            return observation
        if not all(map(_same_image, old, new)):
            return observation
        rest = {key: value for key, value in observation.items() if key != "images"}
        return cls(len(old), new[len(old) :], rest)

    def observation(self, shown: tuple) -> dict:
        return {**self.rest, "images": shown[: self.kept] + self.images}


def _same_image(a: Any, b: Any) -> bool:
    if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)):
        return False
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    # The env hands out views of its stored images (copy_images=False): same memory, no compare.
    same_memory = a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
    return (same_memory and a.strides == b.strides) or bool(np.array_equal(a, b))


class _ImagesPipe:
    """The main process's end of a worker pipe: rebuilds the observations that the worker sent
    as new images (:class:`_NewImages`) from the images of the observation before. Received
    images are made read-only, as the env's own are: later observations hand them out again."""

    def __init__(self, pipe: Any):
        self._pipe = pipe
        self._command: str | None = None
        self._images: tuple = ()

    def send(self, message: Any) -> None:
        self._command = message[0] if isinstance(message, tuple) and message else None
        self._pipe.send(message)

    def recv(self) -> Any:
        reply, success = self._pipe.recv()
        if success and self._command in ("reset", "step") and isinstance(reply, tuple):
            observation = reply[0]
            if isinstance(observation, _NewImages):
                observation = observation.observation(self._images)
                reply = (observation, *reply[1:])
            images = observation.get("images") if isinstance(observation, dict) else None
            if isinstance(images, tuple):
                for image in images:
                    if isinstance(image, np.ndarray):
                        image.flags.writeable = False
                self._images = images
        return reply, success

    def __getattr__(self, name: str) -> Any:  # poll, close, closed, fileno: the pipe's own
        return getattr(self._pipe, name)
